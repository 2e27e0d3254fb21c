package sinch

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// App is a Conversation API app, as far as syncd reads it: its processing
// mode decides whether Sinch keeps contacts for the app's traffic at all.
type App struct {
	ID             string `json:"id,omitempty"`
	DisplayName    string `json:"display_name,omitempty"`
	ProcessingMode string `json:"processing_mode,omitempty"`
}

// Processing modes of an app. In CONVERSATION mode Sinch associates
// messages with contacts and conversations (creating a contact for a new
// sender); in DISPATCH mode, the default of apps created since April 2025,
// it keeps neither: the contacts syncd maintains are never joined by the
// app's inbound traffic.
const (
	ProcessingModeConversation = "CONVERSATION"
	ProcessingModeDispatch     = "DISPATCH"
)

// OpApps names the Apps API calls in logs and metrics.
const OpApps = "apps"

// GetApp reads an app of the project; a missing one gives an error for
// which IsNotFound is true.
func (c *Client) GetApp(ctx context.Context, appID string) (*App, error) {
	if appID == "" {
		return nil, errors.New("sinch: app id is required")
	}
	var out App
	if err := c.do(ctx, &call{op: OpApps, method: http.MethodGet, path: "/apps/" + url.PathEscape(appID), out: &out, idempotent: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

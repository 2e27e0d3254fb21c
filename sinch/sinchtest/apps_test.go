package sinchtest_test

import (
	"context"
	"testing"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// The emulator's apps: read and updated through the Apps API with the
// client, DISPATCH by default, and inbound traffic that joins contacts in
// CONVERSATION mode only.
func TestApps(t *testing.T) {
	emu, srv := sinchtest.Start(t, sinchtest.Options{})
	client, err := sinch.NewClient(emu.ClientConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.GetApp(ctx, "nope"); !sinch.IsNotFound(err) {
		t.Errorf("an unknown app: %v, want a 404", err)
	}
	emu.PutApp(sinch.App{ID: "app1", DisplayName: "Support"})
	app, err := client.GetApp(ctx, "app1")
	if err != nil || app.ProcessingMode != sinch.ProcessingModeDispatch || app.DisplayName != "Support" {
		t.Fatalf("a new app: %+v, %v; want DISPATCH, Sinch's default", app, err)
	}

	from := sinch.ChannelIdentity{Channel: "SMS", Identity: "46732000001"}
	if id, joined := emu.Inbound("app1", from); joined || id != "" || len(emu.Contacts()) != 0 {
		t.Errorf("DISPATCH: an inbound message joined %q; Sinch keeps no contact in that mode", id)
	}

	a := send(t, srv, "PATCH", projectPath+"/apps/app1?update_mask=processing_mode", `{"processing_mode": "CONVERSATION"}`)
	if a.status != 200 {
		t.Fatalf("PATCH processing_mode: %d %s", a.status, a.body)
	}
	if got, _ := emu.App("app1"); got.ProcessingMode != sinch.ProcessingModeConversation {
		t.Fatalf("after the PATCH: %+v", got)
	}
	if a := send(t, srv, "PATCH", projectPath+"/apps/app1?update_mask=processing_mode", `{"processing_mode": "LOUD"}`); a.status != 400 {
		t.Errorf("an unknown mode: %d, want 400", a.status)
	}

	id, joined := emu.Inbound("app1", from)
	if !joined || len(emu.Contacts()) != 1 || emu.Contacts()[0].ID != id {
		t.Fatalf("CONVERSATION: the first message made no contact: %q, %v", id, emu.Contacts())
	}
	if again, _ := emu.Inbound("app1", from); again != id || len(emu.Contacts()) != 1 {
		t.Errorf("the second message joined %q, want the same contact %q", again, id)
	}
}

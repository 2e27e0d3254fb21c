package state_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

func TestOpenErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pa55"
	admin, err := url.Parse(statetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	missingDB := *admin
	missingDB.User = url.UserPassword(admin.User.Username(), secret)
	missingDB.Path = "/syncd_no_such_database"

	tests := []struct {
		name, url, mention string
	}{
		{"unreachable URL", "postgres://syncd:" + secret + "@127.0.0.1:1/crm?sslmode=disable&connect_timeout=5", "127.0.0.1"},
		{"unreachable keyword form", "host=127.0.0.1 port=1 user=syncd password=" + secret + " dbname=crm sslmode=disable connect_timeout=5", "127.0.0.1"},
		{"quoted keyword password", "host=127.0.0.1 port=1 user=syncd password='" + secret + " x' dbname=crm sslmode=disable", "127.0.0.1"},
		{"unparseable", "postgres://syncd:" + secret + "@127.0.0.1:notaport/crm", "invalid database URL"},
		{"unknown database", missingDB.String(), "syncd_no_such_database"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := state.Open(ctxFor(t), tc.url, zaptest.NewLogger(t))
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestOpenHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := state.Open(ctx, statetest.AdminURL(), zaptest.NewLogger(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestSessionsNameThemselves(t *testing.T) {
	t.Parallel()
	dbURL := statetest.NewDatabase(t)
	tests := []struct {
		name, url, prefix string
	}{
		{"default", dbURL, "syncd host="},
		{"operator's choice kept", dbURL + "&application_name=crm-sync-eu", "crm-sync-eu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := statetest.OpenStore(t, tc.url)
			var name string
			if err := s.DB().WithContext(ctxFor(t)).Raw(`SELECT current_setting('application_name')`).Scan(&name).Error; err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, tc.prefix) {
				t.Errorf("application_name = %q, want prefix %q", name, tc.prefix)
			}
		})
	}
}

// A vanished client host must not hold its locks for hours: every session
// asks the server to give up on a silent peer within seconds.
func TestSessionsAskForShortKeepalives(t *testing.T) {
	s := statetest.NewStore(t)
	for name, want := range map[string]string{
		"tcp_keepalives_idle":     "5",
		"tcp_keepalives_interval": "2",
		"tcp_keepalives_count":    "3",
		"tcp_user_timeout":        "11000",
	} {
		var got string
		if err := s.DB().Raw("SELECT current_setting(?)", name).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

package webhook

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseEventFixtures(t *testing.T) {
	tests := []struct {
		file     string
		trigger  string
		contacts []string
		external []string
	}{
		{"ContactCreateEventDto.json", TriggerCreate, []string{"my created contact ID"}, []string{"external id value"}},
		{"ContactUpdateEventDto.json", TriggerUpdate, []string{"my created contact ID"}, []string{"external id value"}},
		{"ContactDeleteEventDto.json", TriggerDelete, []string{"my created contact ID"}, []string{"external id value"}},
		{"ContactMergeEventDto.json", TriggerMerge, []string{"a contact id", "my created contact ID"}, []string{"an external id", "external id value"}},
		{"ContactIdentitiesDuplicationEventDto.json", TriggerDuplication, []string{"01EKA07N79THJ20ZSN6AS30TMW", "01EKA07N79THJ20ZSN6AS30TTT"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "sinchevents-contact", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := ParseEvent(body)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Trigger != tt.trigger || ev.ProjectID != "project id value" || ev.AppID != "app id value" {
				t.Errorf("trigger %q project %q app %q", ev.Trigger, ev.ProjectID, ev.AppID)
			}
			if want := time.Date(2020, 11, 17, 16, 5, 45, 0, time.UTC); !ev.EventTime.Equal(want) {
				t.Errorf("event_time %v, want %v", ev.EventTime, want)
			}
			if got := ev.ContactIDs(); !slices.Equal(got, tt.contacts) {
				t.Errorf("ContactIDs = %q, want %q", got, tt.contacts)
			}
			if got := ev.ExternalIDs(); !slices.Equal(got, tt.external) {
				t.Errorf("ExternalIDs = %q, want %q", got, tt.external)
			}
		})
	}
}

func TestParseEventRefuses(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"not JSON", `{"app_id":`, &Refusal{Reason: ReasonBadPayload}},
		{"two events", `{"contact_create_notification":{"contact":{"id":"a"}},"contact_delete_notification":{"contact":{"id":"a"}}}`, &Refusal{Reason: ReasonBadPayload}},
		{"no contact named", `{"contact_update_notification":{"contact":{}}}`, &Refusal{Reason: ReasonBadPayload}},
		{"a message event", `{"project_id":"p","message_inbound":{"id":"m"}}`, ErrNotContactEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvent([]byte(tt.body))
			var ref *Refusal
			switch want := tt.want.(type) {
			case *Refusal:
				if !errors.As(err, &ref) || ref.Reason != want.Reason {
					t.Errorf("err = %v, want a %s refusal", err, want.Reason)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
		})
	}
}

func TestEventKey(t *testing.T) {
	a := EventKey([]byte(`{"a": 1, "contact_update_notification": {"contact": {"id": "c"}}}`))
	if b := EventKey([]byte(`{"a":1,"contact_update_notification":{"contact":{"id":"c"}}}`)); a != b {
		t.Error("whitespace changes the key")
	}
	if c := EventKey([]byte(`{"a":2,"contact_update_notification":{"contact":{"id":"c"}}}`)); a == c {
		t.Error("two events share a key")
	}
}

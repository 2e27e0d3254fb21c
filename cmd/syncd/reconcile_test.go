package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// TestBackfillAdoptsAndUnlinks: an auto-created contact holding a record's
// phone is adopted rather than duplicated, and with delete_policy unlink an
// orphan keeps living without its external_id.
func TestBackfillAdoptsAndUnlinks(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 1000\nsync:\n  delete_policy: unlink\n  max_delete_fraction: 1\n")
	h.migrate()
	rows := crmRows(3)
	h.load(rows)
	seeded := h.emu.Seed(
		sinch.Contact{Language: "EN_US", DisplayName: "WhatsApp Name", ChannelIdentities: []sinch.ChannelIdentity{
			{Channel: "WHATSAPP", Identity: "46730000001"},
			{Channel: "MESSENGER", Identity: "fb-77", AppID: "APP1"},
		}},
		sinch.Contact{ExternalID: "crm-0999", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46739999999"}}},
	)
	walkIn, orphan := seeded[0], seeded[1]

	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	if n := h.emu.Calls(sinchtest.OpCreate); n != 2 {
		t.Errorf("%d creates, want 2 (crm-0001 adopts)", n)
	}
	got := h.byExternalID()
	adopted := got["crm-0001"]
	if len(adopted) != 1 || adopted[0].ID != walkIn.ID {
		t.Fatalf("crm-0001 = %+v, want the adopted contact %s", adopted, walkIn.ID)
	}
	if ids := adopted[0].ChannelIdentities; len(ids) != 3 || ids[2].Channel != "MESSENGER" {
		t.Errorf("adopted identities = %+v, want SMS, WHATSAPP and the kept MESSENGER", ids)
	}
	if adopted[0].DisplayName != "Person 1" {
		t.Errorf("adopted name = %q", adopted[0].DisplayName)
	}
	unlinked := got[""]
	if len(unlinked) != 1 || unlinked[0].ID != orphan.ID {
		t.Errorf("unlinked contacts = %+v, want the orphan %s kept without external_id", unlinked, orphan.ID)
	}
	h.emu.ResetCalls()
	if code, out, _ := h.run("diff"); code != 0 {
		t.Errorf("diff after backfill exited %d:\n%s", code, out)
	}
}

// TestBackfillSinchRejectsOneContact: a 400 from Sinch rejects that contact
// and the run goes on.
func TestBackfillSinchRejectsOneContact(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(5))
	h.emu.RefuseWrites(func(c sinch.Contact) error {
		if c.ExternalID == "crm-0003" {
			return errors.New("identity 46730000003 is not reachable on WHATSAPP")
		}
		return nil
	})
	code, out, errOut := h.run("backfill")
	if code != 0 {
		t.Fatalf("backfill exited %d, want 0 with the reject listed:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "rejected by Sinch  crm-0003") {
		t.Errorf("the report does not list the reject:\n%s", out)
	}
	got := h.byExternalID()
	if len(got) != 4 || len(got["crm-0003"]) != 0 {
		t.Errorf("contacts by external_id = %v, want the four others", got)
	}
	var journaled int64
	if err := h.store.DB().Raw("SELECT count(*) FROM syncd.journal WHERE external_id = 'crm-0003' AND status = 'rejected' AND http_status = 400").Scan(&journaled).Error; err != nil {
		t.Fatal(err)
	}
	if journaled != 1 {
		t.Errorf("%d rejected journal entries for crm-0003, want 1", journaled)
	}
	if code, _, _ := h.run("backfill", "--strict"); code != exitError {
		t.Errorf("--strict with a Sinch reject exited %d, want 1", code)
	}
}

// TestBackfillUnreadableRowKeepsItsContact: a view row the store cannot read
// (here a NULL updated_at) is rejected, and its contact is not deleted as if
// the row were gone.
func TestBackfillUnreadableRowKeepsItsContact(t *testing.T) {
	h := newHarness(t)
	h.setConfig("sinch:\n  rate_limit_rps: 1000\ncrm:\n  source: crm_view\nsync:\n  max_delete_fraction: 1\n")
	h.migrate()
	h.load(crmRows(4))
	if err := h.store.DB().Exec(`CREATE VIEW crm_view AS SELECT external_id, display_name, email, phone, channel_identities,
		channel_priority, language, metadata,
		CASE WHEN external_id = 'crm-0002' THEN NULL ELSE updated_at END AS updated_at, deleted_at FROM crm_contacts`).Error; err != nil {
		t.Fatal(err)
	}
	h.emu.Seed(sinch.Contact{ExternalID: "crm-0002", Language: "EN_US", ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "46730000002"}}})
	code, out, errOut := h.run("backfill")
	if code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "rejected  crm-0002  updated_at") {
		t.Errorf("the unreadable row is not listed:\n%s", out)
	}
	if got := h.byExternalID(); len(got["crm-0002"]) != 1 || len(got) != 4 {
		t.Errorf("contacts = %v, want crm-0002 kept and the three others created", got)
	}
}

// TestBackfillOverOAuth2 syncs with OAuth2 client credentials against the
// emulator's token endpoint.
func TestBackfillOverOAuth2(t *testing.T) {
	h := newHarness(t)
	h.env["SYNCD_SINCH_AUTH"] = "oauth2"
	h.env["SYNCD_SINCH_TOKEN_URL"] = h.env["SYNCD_SINCH_BASE_URL"] + "/oauth2/token"
	h.migrate()
	h.load(crmRows(25))
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill over oauth2 exited %d:\n%s%s", code, out, errOut)
	}
	if n := len(h.emu.Contacts()); n != 25 {
		t.Errorf("%d contacts, want 25", n)
	}
	// One token serves the whole run.
	if n := h.emu.Calls(sinchtest.OpToken); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

package sync_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// TestModelSequences replays, through TestModel's harness and checks, the
// shortest sequences that once broke an invariant (most found by TestModel),
// step by step and without random draws: rapid's saved failures stop
// replaying once the code's path changes, these do not.
func TestModelSequences(t *testing.T) {
	env := newModelEnv(t)
	ada := func(phone string) *modelRecord {
		return &modelRecord{name: "Ada", email: "ada@example.com", phone: phone}
	}
	carrying := func(t *testing.T, h *modelHarness, ext string) sinch.Contact {
		t.Helper()
		for _, c := range h.emu.Contacts() {
			if c.ExternalID == ext {
				return c
			}
		}
		t.Fatalf("no contact carries %s", ext)
		return sinch.Contact{}
	}
	p1, p2 := phonePool[0], phonePool[1]
	full, incremental := state.RunFull, state.RunIncremental
	for i, tc := range []struct {
		name  string
		steps func(t *testing.T, h *modelHarness)
	}{{
		name: "hand edits of managed fields are put back, MESSENGER kept",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.run(t, full, stopAt{})
			c := carrying(t, h, "crm-0")
			c.DisplayName, c.Email = "Edited by hand", "hand@example.net"
			c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "m-1", AppID: "APP"})
			h.emu.Seed(c)
		},
	}, {
		name: "an auto-created contact holding one record's phone is adopted",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p2))
			h.run(t, full, stopAt{})
			h.emu.Seed(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: p1}}})
			h.put(t, "crm-1", ada(p1))
			h.run(t, incremental, stopAt{})
		},
	}, {
		name: "a create whose answer is lost is not repeated",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p2))
			h.run(t, full, stopAt{cancelAt: 2, loseAnswer: true})
			h.run(t, incremental, stopAt{})
		},
	}, {
		name: "a renamed record keeps its contact",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.run(t, full, stopAt{})
			h.nextID = 1
			h.rename(t, "crm-0") // to crm-1: re-keyed, not deleted and created anew
		},
	}, {
		name: "a contact hand-keyed to another record is not merged into it",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p2))
			h.run(t, full, stopAt{})
			h.setExternalID(t, carrying(t, h, "crm-0"), "crm-1") // put back, never merged into crm-1's contact
		},
	}, {
		name: "a contact hand-keyed to a new record is not taken over by it",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.run(t, full, stopAt{})
			h.put(t, "crm-1", ada(p2))
			h.setExternalID(t, carrying(t, h, "crm-0"), "crm-1") // put back, not patched into crm-1 with crm-0 created anew
		},
	}, {
		name: "a run cut short never creates a record's contact before the patch that frees its external_id",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.run(t, full, stopAt{})
			h.setExternalID(t, carrying(t, h, "crm-0"), "crm-1")
			h.put(t, "crm-1", ada(p2))
			// One write: the patch giving crm-0's contact its external_id
			// back, not crm-1's create beside the contact still carrying it.
			h.run(t, full, stopAt{cancelAt: 1})
		},
	}, {
		name: "a renamed record keeps its contact when another was hand-keyed to its new external_id",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p2))
			h.run(t, incremental, stopAt{})
			h.nextID = 2
			h.rename(t, "crm-0") // to crm-2
			h.setExternalID(t, carrying(t, h, "crm-1"), "crm-2")
			h.rename(t, "crm-1") // to crm-3: each keeps its own contact, re-keyed, whatever crm-1's carries
			h.run(t, full, stopAt{})
		},
	}, {
		name: "an adoption cut short after its merge is finished for its record, whoever shares the phone later",
		steps: func(t *testing.T, h *modelHarness) {
			h.emu.Seed(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: phonePool[2]}, {Channel: "WHATSAPP", Identity: p2}}})
			h.emu.Seed(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: p2}, {Channel: "WHATSAPP", Identity: p2}}})
			h.put(t, "crm-2", ada(p2))
			h.run(t, full, stopAt{cancelAt: 2}) // the merge, not the patch
			h.put(t, "crm-3", ada(p2))
			h.run(t, incremental, stopAt{})
		},
	}, {
		name: "a contact of a deleted record, hand-keyed to another, stays that other's",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.run(t, full, stopAt{})
			h.put(t, "crm-1", ada(p2))
			h.setExternalID(t, carrying(t, h, "crm-0"), "crm-1")
			h.exec(t, "DELETE FROM crm_contacts WHERE external_id = $1", "crm-0")
			delete(h.records, "crm-0")
			// One write: never crm-1's create beside the contact carrying it.
			h.run(t, full, stopAt{cancelAt: 2})
		},
	}, {
		name: "a contact a full run re-keyed for a rename, then hand-keyed to another record, is put back, not merged into that one's",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p2))
			h.run(t, full, stopAt{})
			h.nextID = 2
			h.rename(t, "crm-0") // to crm-2: the full run re-keys, and crm-0's link must go with it
			h.run(t, full, stopAt{})
			h.setExternalID(t, carrying(t, h, "crm-2"), "crm-1")
			h.run(t, incremental, stopAt{})
		},
	}, {
		name: "a gone record's contact, hand-keyed to a new record, is deleted before that record's create",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p1))
			h.run(t, full, stopAt{})
			for _, ext := range []string{"crm-0", "crm-1"} {
				h.exec(t, "DELETE FROM crm_contacts WHERE external_id = $1", ext)
				delete(h.records, ext)
			}
			// crm-3 holds the phone of both gone records' contacts: which is
			// its own would be a guess, so both go and it gets a new one; one
			// of them now carries crm-2, which has no contact.
			h.put(t, "crm-2", ada(p2))
			h.put(t, "crm-3", ada(p1))
			h.setExternalID(t, carrying(t, h, "crm-1"), "crm-2")
			for range 4 {
				h.run(t, full, stopAt{cancelAt: 2}) // the listing, then one write
			}
		},
	}, {
		name: "a record waits while a contact keyed to it by hand waits for the full run to be re-keyed for a rename",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p2))
			h.run(t, full, stopAt{})
			h.put(t, "crm-2", ada(phonePool[2]))
			h.nextID = 3
			h.rename(t, "crm-1") // to crm-3, whose contact an incremental run leaves to the full run
			h.setExternalID(t, carrying(t, h, "crm-1"), "crm-2")
			h.run(t, incremental, stopAt{}) // never crm-2's create beside the contact carrying crm-2
			h.run(t, incremental, stopAt{})
		},
	}, {
		name: "a record waits when the patch that would free its external_id waits",
		steps: func(t *testing.T, h *modelHarness) {
			alan := func(email, phone string) *modelRecord { return &modelRecord{name: "Alan", email: email, phone: phone} }
			h.put(t, "crm-1", alan("grace@example.org", p1))
			h.put(t, "crm-2", alan("grace@example.org", p1))
			h.run(t, full, stopAt{})
			h.setExternalID(t, carrying(t, h, "crm-1"), "crm-2")
			h.put(t, "crm-3", alan("", p2))
			h.put(t, "crm-4", alan("ada@example.com", p1))
			h.nextID = 5
			h.rename(t, "crm-3") // to crm-5
			h.exec(t, "DELETE FROM crm_contacts WHERE external_id = $1", "crm-1")
			delete(h.records, "crm-1")
			h.setExternalID(t, carrying(t, h, "crm-2"), "crm-5")
			// crm-1's contact, carrying crm-2, waits for the full run (crm-4
			// claims it); so does crm-2's patch taking crm-5 from its own
			// contact, and so crm-5's create.
			h.run(t, incremental, stopAt{})
		},
	}, {
		name: "a renamed record keeps its contact when a deleted record's was keyed to its new external_id by hand",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-2", ada(p2))
			h.put(t, "crm-3", ada(phonePool[2]))
			h.run(t, full, stopAt{})
			h.nextID = 4
			h.rename(t, "crm-2") // to crm-4
			h.setExternalID(t, carrying(t, h, "crm-3"), "crm-4")
			h.exec(t, "DELETE FROM crm_contacts WHERE external_id = $1", "crm-3")
			delete(h.records, "crm-3")
			h.run(t, full, stopAt{}) // crm-3's contact goes with crm-3; crm-4's is re-keyed, not deleted
		},
	}, {
		name: "two linked contacts whose external_ids were swapped in Sinch never both carry one",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", ada(p2))
			h.run(t, full, stopAt{})
			c0, c1 := carrying(t, h, "crm-0"), carrying(t, h, "crm-1")
			h.setExternalID(t, c0, "crm-1")
			h.setExternalID(t, c1, "crm-0")
			for range 3 {
				h.run(t, full, stopAt{cancelAt: 2}) // the listing, then one write
			}
		},
	}, {
		name: "an incremental run leaves a contact of two records alone",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-2", ada(p2))
			h.run(t, full, stopAt{})
			h.put(t, "crm-1", ada(p1))
			h.emu.Seed(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: p1}, {Channel: "WHATSAPP", Identity: p2}}})
			h.run(t, incremental, stopAt{}) // deferred: never adopted for crm-1, stripping crm-2's WhatsApp number
		},
	}, {
		name: "a full run adopts no contact for a record deleted outright while it ran, and a contact deleted in Sinch meanwhile fails nothing",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.put(t, "crm-1", &modelRecord{name: "Alan", email: "", phone: p2})
			h.run(t, full, stopAt{})
			// Drift for the next full run: a patch of crm-1's contact, and
			// an adoption of a walk-in's contact for a new record.
			h.exec(t, "UPDATE crm_contacts SET display_name = 'Alan Turing' WHERE external_id = 'crm-1'")
			h.records["crm-1"].name = "Alan Turing"
			h.emu.Seed(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: phonePool[2]}}})
			h.put(t, "crm-2", ada(phonePool[2]))
			gone := carrying(t, h, "crm-1")
			rep, _ := h.runWith(t, full, stopAt{}, func() {
				h.exec(t, "DELETE FROM crm_contacts WHERE external_id = 'crm-2'")
				delete(h.records, "crm-2")
				if err := h.console.DeleteContact(context.Background(), gone.ID); err != nil {
					t.Fatal(err)
				}
				h.forget(gone.ID)
			})
			if rep.Outcome != state.OutcomeSucceeded || rep.Applied.Patch != 0 || rep.Skipped != 2 {
				t.Errorf("the full run: %s, applied %+v, %d skipped; want it to succeed, skipping the adoption and the patch", rep.Outcome, rep.Applied, rep.Skipped)
			}
		},
	}, {
		name: "a full run adopts no contact for a record when a record inserted while it ran shares its phone",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-1", &modelRecord{name: "Edsger", email: "ada@example.com", phone: p2})
			h.put(t, "crm-2", ada(p1))
			h.run(t, full, stopAt{})
			c := carrying(t, h, "crm-1")
			if err := h.console.DeleteContact(context.Background(), c.ID); err != nil {
				t.Fatal(err)
			}
			h.forget(c.ID)
			h.emu.Seed(sinch.Contact{ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: p2[1:]}, {Channel: "SMS", Identity: p2[1:]}}})
			// The run decides to adopt the walk-in's contact for crm-1; crm-5,
			// inserted after its read, holds the phone too: whose the
			// contact is was decided without it.
			rep, _ := h.runWith(t, full, stopAt{}, func() {
				h.put(t, "crm-5", &modelRecord{name: "Grace", email: "ada@example.com", phone: p2})
			})
			if rep.Applied.Patch != 0 {
				t.Errorf("the full run patched %d contacts, want the adoption skipped", rep.Applied.Patch)
			}
		},
	}, {
		name: "a run that loses its lock writes nothing more",
		steps: func(t *testing.T, h *modelHarness) {
			h.put(t, "crm-0", ada(p1))
			h.run(t, full, stopAt{loseLockAt: 1}) // never creates crm-0 beside the standby's
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := env.start(t, fmt.Sprintf("sequence-%d", i))
			defer h.close()
			tc.steps(t, h)
			h.converge(t)
		})
	}
}

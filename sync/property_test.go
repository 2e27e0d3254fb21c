package sync_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"pgregory.net/rapid"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	contactsync "github.com/syncd/syncd/sync"
)

// phonePool is small so that random records and contacts collide on
// identities, which is where adoption and merging live.
var phonePool = []string{"+46732000001", "+46732000002", "+46732000003", "+46732000004", "+46732000005"}

func genRecord(t *rapid.T, ext string) crm.Record {
	maybe := func(label string, values ...string) *string {
		if rapid.Bool().Draw(t, label+"-null") {
			return nil
		}
		v := rapid.SampledFrom(values).Draw(t, label)
		return &v
	}
	r := crm.Record{
		ExternalID:  ext,
		DisplayName: maybe("name", "", "Ada", "Grace", "Alan"),
		Email:       maybe("email", "", "a@example.com", "b@EXAMPLE.com"),
		Phone:       maybe("phone", append([]string{"bogus", "+46 73 200 00 01"}, phonePool...)...),
		Language:    maybe("language", "", "EN_US", "SV", "de"),
		Metadata:    maybe("metadata", "", "x", `{"a": 1}`),
		UpdatedAt:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if rapid.Bool().Draw(t, "extra-identity") {
		r.ChannelIdentities = []byte(`[{"channel":"MESSENGER","identity":"m-` + ext + `","app_id":"APP"}]`)
	}
	if rapid.Bool().Draw(t, "priority") {
		r.ChannelPriority = rapid.SampledFrom([][]string{{}, {"WHATSAPP", "SMS"}, {"SMS"}}).Draw(t, "priority-list")
	}
	if rapid.IntRange(0, 5).Draw(t, "tombstone") == 0 {
		now := time.Now()
		r.DeletedAt = &now
	}
	return r
}

func genContact(t *rapid.T) sinch.Contact {
	c := sinch.Contact{
		ExternalID:  rapid.SampledFrom([]string{"", "", "crm-0", "crm-1", "crm-2", "crm-3", "crm-7", "shop-1"}).Draw(t, "ext"),
		DisplayName: rapid.SampledFrom([]string{"Unknown", "Ada", "Someone"}).Draw(t, "cname"),
		Email:       rapid.SampledFrom([]string{"", "a@example.com", "z@example.com"}).Draw(t, "cemail"),
		Language:    rapid.SampledFrom([]string{"EN_US", "SV", "UNSPECIFIED"}).Draw(t, "clanguage"),
		Metadata:    rapid.SampledFrom([]string{"", `{"a":1}`, "y"}).Draw(t, "cmetadata"),
	}
	for _, ch := range []string{"SMS", "WHATSAPP", "MMS"} {
		if rapid.Bool().Draw(t, "has-"+ch) {
			c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: ch, Identity: rapid.SampledFrom(phonePool).Draw(t, "cphone-"+ch)})
		}
	}
	if rapid.Bool().Draw(t, "has-messenger") {
		c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "fb-1", AppID: "APP"})
	}
	if len(c.ChannelIdentities) == 0 {
		c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "SMS", Identity: rapid.SampledFrom(phonePool).Draw(t, "cphone")}}
	}
	return c
}

// TestPlanConverges applies the plan for random CRM tables and Sinch states
// to the emulator and checks that a second diff finds nothing to do, that no
// contact outside syncd's ownership was written, and that no CRM record ends
// up with two contacts.
func TestPlanConverges(t *testing.T) {
	store := statetest.NewStore(t)
	ctx := context.Background()
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		project := fmt.Sprintf("prop-%d", run)
		emu, srv := sinchtest.Start(t, sinchtest.Options{ProjectID: project, KeyID: "k", KeySecret: "s"})
		defer srv.Close()
		cfg := emu.ClientConfig(srv.URL)
		cfg.RateLimitRPS = 10000
		client, err := sinch.NewClient(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		defer client.CloseIdleConnections()

		opts := planner.DefaultOptions()
		opts.AllowMassDelete = true
		opts.ExternalIDPrefix = rapid.SampledFrom([]string{"", "crm-"}).Draw(rt, "prefix")
		opts.DeletePolicy = rapid.SampledFrom([]planner.DeletePolicy{"delete", "unlink", "ignore"}).Draw(rt, "policy")

		n := rapid.IntRange(0, 6).Draw(rt, "records")
		var records []crm.Record
		for i := range n {
			records = append(records, genRecord(rt, fmt.Sprintf("crm-%d", i)))
		}
		before := emu.Seed(rapid.SliceOfN(rapid.Custom(genContact), 0, 8).Draw(rt, "contacts")...)

		rec := &contactsync.Reconciler{CRM: crm.New(store.SQL()), Links: store, Identities: store, Deferrals: store,
			Journal: store, Runs: store, Watermarks: store, Locks: store,
			Sinch: client, Logger: zaptest.NewLogger(t), ProjectID: project, Concurrency: 4, Options: opts}
		links, err := store.Links(ctx, project)
		if err != nil {
			rt.Fatal(err)
		}
		linkList := slices.SortedFunc(maps.Values(links), func(a, b planner.Link) int { return strings.Compare(a.ExternalID, b.ExternalID) })
		plan := planner.Diff(planner.IndexOf(opts, crm.Source{Relation: "crm_contacts"}, true, records, before, linkList))
		runRow, err := store.StartRun(ctx, project, state.RunFull)
		if err != nil {
			rt.Fatal(err)
		}
		rep, err := rec.Apply(ctx, runRow.ID, plan)
		if err != nil {
			rt.Fatal(err)
		}
		if rep.Failed > 0 || len(rep.Rejected) > 0 {
			rt.Fatalf("apply failed: %v %v\nplan %+v", rep.Errors, rep.Rejected, plan.Operations)
		}

		after := emu.Contacts()
		links, err = store.Links(ctx, project)
		if err != nil {
			rt.Fatal(err)
		}
		again := planner.Diff(planner.IndexOf(opts, crm.Source{Relation: "crm_contacts"}, true, records, after, linkList))
		if !again.Empty() {
			rt.Fatalf("second plan not empty: %q\nfirst plan %q\nbefore %+v\nafter %+v", again.Operations, plan.Operations, before, after)
		}

		// Contacts syncd does not own are untouched.
		for _, c := range before {
			owned := c.ExternalID != "" && len(c.ExternalID) >= len(opts.ExternalIDPrefix) && c.ExternalID[:len(opts.ExternalIDPrefix)] == opts.ExternalIDPrefix
			if owned || c.ExternalID == "" {
				continue
			}
			i := slices.IndexFunc(after, func(a sinch.Contact) bool { return a.ID == c.ID })
			if i < 0 || fmt.Sprint(after[i]) != fmt.Sprint(c) {
				rt.Fatalf("unowned contact %s was written: before %+v", c.ID, c)
			}
		}
		// At most one contact per live, valid CRM record.
		for _, r := range records {
			if _, rej := planner.Normalize(r, opts); rej != nil || r.Deleted() {
				continue
			}
			count := 0
			for _, c := range after {
				if c.ExternalID == r.ExternalID {
					count++
				}
			}
			if count != 1 {
				rt.Fatalf("%s has %d contacts after the run", r.ExternalID, count)
			}
		}
	})
}

package planner_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// world is both sides and the stored links, as a full run reads them.
type world struct {
	opts     planner.Options
	records  []crm.Record
	contacts []sinch.Contact
	links    []planner.Link
}

var worldPhones = []string{"+46732000001", "+46732000002", "+46732000003", "+46732000004"}

func genWorld(t *rapid.T) world {
	w := world{opts: planner.DefaultOptions()}
	w.opts.AllowMassDelete = true // one component's deletes are judged against the project, not the scope
	w.opts.ExternalIDPrefix = rapid.SampledFrom([]string{"", "crm-"}).Draw(t, "prefix")
	w.opts.DeletePolicy = rapid.SampledFrom([]planner.DeletePolicy{"delete", "unlink", "ignore"}).Draw(t, "policy")
	for i := range rapid.IntRange(1, 6).Draw(t, "records") {
		r := crm.Record{ExternalID: fmt.Sprintf("crm-%d", i), UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		name := rapid.SampledFrom([]string{"Ada", "Grace"}).Draw(t, "name")
		r.DisplayName = &name
		phone := rapid.SampledFrom(append([]string{"bogus"}, worldPhones...)).Draw(t, "phone")
		r.Phone = &phone
		if rapid.IntRange(0, 3).Draw(t, "messenger") == 0 {
			r.ChannelIdentities = []byte(`[{"channel":"MESSENGER","identity":"m-1","app_id":"APP"}]`)
		}
		if rapid.IntRange(0, 5).Draw(t, "tombstone") == 0 {
			at := r.UpdatedAt
			r.DeletedAt = &at
		}
		w.records = append(w.records, r)
	}
	exts := []string{"", "", "crm-0", "crm-1", "crm-2", "crm-3", "crm-6", "crm-7", "shop-1"}
	for i := range rapid.IntRange(0, 7).Draw(t, "contacts") {
		c := sinch.Contact{
			ID:          fmt.Sprintf("01JB00000000000000000000%02d", i),
			ExternalID:  rapid.SampledFrom(exts).Draw(t, "ext"),
			DisplayName: rapid.SampledFrom([]string{"Ada", "Grace", "Unknown"}).Draw(t, "cname"),
			Language:    "EN_US",
		}
		for _, ch := range []string{"SMS", "WHATSAPP", "MMS"} {
			if rapid.Bool().Draw(t, "has-"+ch) {
				phone := rapid.SampledFrom(worldPhones).Draw(t, "cphone")
				c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: ch, Identity: phone[1:]})
			}
		}
		if rapid.IntRange(0, 3).Draw(t, "cmessenger") == 0 {
			c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "m-1", AppID: "APP"})
		}
		if len(c.ChannelIdentities) == 0 {
			c.ChannelIdentities = []sinch.ChannelIdentity{{Channel: "SMS", Identity: worldPhones[0][1:]}}
		}
		w.contacts = append(w.contacts, c)
	}
	// Links: each contact linked to at most one record, which may be gone.
	linked := map[string]bool{}
	for _, ext := range []string{"crm-0", "crm-1", "crm-2", "crm-3", "crm-4", "crm-5", "crm-6", "crm-7"} {
		if len(w.contacts) == 0 || !rapid.Bool().Draw(t, "linked-"+ext) {
			continue
		}
		id := w.contacts[rapid.IntRange(0, len(w.contacts)-1).Draw(t, "link-"+ext)].ID
		if !linked[id] {
			linked[id] = true
			w.links = append(w.links, planner.Link{ExternalID: ext, ContactID: id})
		}
	}
	return w
}

// components splits the world into the connected parts of its identity
// graph, as a partial run's scope grows: a record reaches its managed
// identities and the contacts that carry its external_id or that its link
// names; a contact reaches its identities and the record its external_id or
// a link names; an identity reaches every record and contact holding it.
func components(w world) []world {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	union := func(a, b string) { parent[find(a)] = find(b) }
	for _, r := range w.records {
		find("r:" + r.ExternalID)
		if want, rej := planner.Normalize(r, w.opts); rej == nil && !want.Deleted {
			for _, k := range planner.LookupKeys(want.Identities) {
				union("r:"+r.ExternalID, "k:"+k)
			}
		}
	}
	for _, c := range w.contacts {
		find("c:" + c.ID)
		if c.ExternalID != "" {
			union("c:"+c.ID, "r:"+c.ExternalID)
		}
		for _, k := range planner.LookupKeys(c.ChannelIdentities) {
			union("c:"+c.ID, "k:"+k)
		}
	}
	for _, l := range w.links {
		union("r:"+l.ExternalID, "c:"+l.ContactID)
	}
	parts := map[string]*world{}
	part := func(node string) *world {
		root := find(node)
		if parts[root] == nil {
			parts[root] = &world{opts: w.opts}
		}
		return parts[root]
	}
	for _, r := range w.records {
		p := part("r:" + r.ExternalID)
		p.records = append(p.records, r)
	}
	for _, c := range w.contacts {
		p := part("c:" + c.ID)
		p.contacts = append(p.contacts, c)
	}
	for _, l := range w.links {
		p := part("r:" + l.ExternalID)
		p.links = append(p.links, l)
	}
	var out []world
	for _, p := range parts {
		out = append(out, *p)
	}
	return out
}

// partialIndex is what a partial run whose scope is the component c holds:
// its records, contacts and links, every external_id they name read from
// the source (absent ones vanished, unless the source is empty), and the
// project's count of links.
func partialIndex(w, c world) *planner.Index {
	idx := planner.NewIndex(c.opts, crm.Source{Relation: "crm_contacts"}, false)
	idx.AddRecords(c.records)
	read := map[string]bool{}
	for _, r := range c.records {
		read[r.ExternalID] = true
	}
	vanish := func(ext string) {
		if ext != "" && !read[ext] && len(w.records) > 0 {
			read[ext] = true
			idx.Vanish(ext)
		}
	}
	for _, c := range c.contacts {
		vanish(c.ExternalID)
	}
	for _, l := range c.links {
		vanish(l.ExternalID)
	}
	idx.AddContacts(c.contacts)
	idx.AddLinks(c.links...)
	idx.SetProjectLinks(len(w.links))
	return idx
}

// TestPartialDecidesAsFull checks, for random worlds, that the plans of
// partial runs whose scopes are the components of the identity graph
// together are the full run's plan: the same operations with the same
// reasons, the same notes, the same links dropped and stored, the same
// records left unchanged. So a partial run decides exactly what a full run
// would on the part of the world it reads.
func TestPartialDecidesAsFull(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t)
		full := planner.Diff(planner.IndexOf(w.opts, crm.Source{Relation: "crm_contacts"}, true, w.records, w.contacts, w.links))
		var parts planner.Plan
		for _, c := range components(w) {
			p := planner.Diff(partialIndex(w, c))
			parts.Operations = append(parts.Operations, p.Operations...)
			parts.Notes = append(parts.Notes, p.Notes...)
			parts.Unlinks = append(parts.Unlinks, p.Unlinks...)
			parts.Links = append(parts.Links, p.Links...)
			parts.Rejected = append(parts.Rejected, p.Rejected...)
			parts.Unchanged += p.Unchanged
		}
		same := func(what string, want, got []string) {
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(want, got) {
				t.Fatalf("%s differ:\nfull    %q\npartial %q", what, want, got)
			}
		}
		ops := func(p planner.Plan) []string {
			var out []string
			for _, op := range p.Operations {
				out = append(out, op.String()+": "+op.Reason+" retires "+op.Retires)
			}
			return out
		}
		same("operations", ops(full), ops(parts))
		same("notes", full.Notes, parts.Notes)
		same("unlinks", full.Unlinks, parts.Unlinks)
		links := func(p planner.Plan) []string {
			var out []string
			for _, l := range p.Links {
				out = append(out, l.ExternalID+"="+l.ContactID)
			}
			return out
		}
		same("links", links(full), links(parts))
		rejects := func(p planner.Plan) []string {
			var out []string
			for _, r := range p.Rejected {
				out = append(out, r.ExternalID+" "+r.String())
			}
			return out
		}
		same("rejects", rejects(full), rejects(parts))
		if full.Unchanged != parts.Unchanged {
			t.Fatalf("unchanged: full %d, partial %d", full.Unchanged, parts.Unchanged)
		}
	})
}

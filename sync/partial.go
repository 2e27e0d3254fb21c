package sync

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	stdsync "sync"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// DefaultScopeBound is how many records and contacts a partial run's scope
// may grow to around one change before the change is deferred to the next
// full run.
const DefaultScopeBound = 50

// partialScope is the scope of a partial run (incremental, event, explain):
// the seeds (records by external_id, contacts by id) and the connected part
// of the identity graph around them, read afresh. It grows to a fixed
// point:
//
//   - from a record: the contacts that carry its external_id, the one its
//     link names, and its identities;
//   - from an identity: every Sinch contact holding it (the channel and
//     identity look-up) and every CRM record holding it (syncd's index of
//     the records' identities, never a scan of the source);
//   - from a contact: the record its external_id or a link names, and, unless
//     it is simply the linked contact of the record whose external_id it
//     carries, its identities.
//
// So the index it fills holds, for each component, everything a full run
// would weigh in deciding it (planner's TestPartialDecidesAsFull), and the
// planner decides as a full run does. A component that grows past the
// bound is left out, and its seeds deferred to the next full run.
//
// A record's identities are looked up in Sinch when they are new to syncd
// (the record has no link, or its identities differ from those indexed when
// it was last read) or when every identity is asked for (explain); the
// identities a linked record already had were looked up when it got them,
// and what Sinch does with them since reaches syncd as an event (or the
// full run, without webhooks). This keeps an incremental run at one look-up
// per changed row in the common case.
type partialScope struct {
	r *Reconciler
	// records and contacts are the seeds; known are seed records already
	// read (an incremental run's changed rows), unread those that could not
	// be.
	records  []string
	contacts []string
	known    map[string]crm.Record
	unread   []planner.Rejection
	// allIdentities looks up every identity of every record in scope, not
	// only the new ones.
	allIdentities bool
	// renames are the CRM's rename notifications (old external_id to new),
	// an incremental run's.
	renames map[string]string
	// noGuard plans without the delete guard (explain: one record cannot
	// judge a run's deletes).
	noGuard bool
	// deferred are seeds left to the full run before the scope grows (past
	// what one event may ask for).
	deferred []state.Deferral
	// changed are the CRM rows changed since the watermark, which syncd's
	// index of identities may not hold yet (it is written once a run has
	// acted on a row): the records holding an identity are looked for among
	// them too. nil reads them (an incremental run passes the rows it read).
	changed map[string]crm.Record

	// What the scope found, once read.
	found partialFound
}

// partialFound is what a partial scope read, for its run to act on.
type partialFound struct {
	deferred []state.Deferral // seeds left to the full run
	// keys are the identity keys of the records read, to index once the
	// run has applied (nil for a record not live).
	keys map[string][]string
	// renamed are the old external_ids whose links moved to the new ones.
	renamed []string
	// contacts are the contacts the scope holds, and records the rows read
	// (live or not), by external_id.
	contacts []sinch.Contact
	records  map[string]crm.Record
	links    map[string]planner.Link
}

// growth is a partial scope while it grows.
type growth struct {
	s   *partialScope
	ctx context.Context
	api SinchAPI

	recs  map[string]*recNode     // by external_id
	cons  map[string]*conNode     // by contact id
	links map[string]planner.Link // by external_id
	// asked are the identities looked up in Sinch (by sinch.IdentityKey)
	// and the lookup keys whose records were looked for in the index.
	asked, indexed map[string]bool
	comp           *components
	// Work for the next round.
	toRead   []string                // external_ids to read
	toFind   []string                // external_ids to look up in Sinch
	toGet    []string                // contact ids to read
	toAsk    []sinch.ChannelIdentity // identities to look up in Sinch
	toIndex  []string                // lookup keys whose records to find
	toLink   []string                // contact ids whose links to read
	newCons  []string                // contacts found this round, to expand
	complete bool                    // the project's identity index holds every live record
	pending  map[string][]string     // lookup key -> changed rows holding it, not indexed yet
}

type recNode struct {
	read   bool
	rec    *crm.Record
	rej    *planner.Rejection
	absent bool     // read, and not in the source
	keys   []string // lookup keys of a live record
	found  bool     // looked up by external_id in Sinch
}

type conNode struct {
	c        *sinch.Contact // nil while unread, or when Sinch no longer has it
	gone     bool
	expanded bool
}

func (s *partialScope) read(ctx context.Context) (*planner.Index, error) {
	g := &growth{s: s, ctx: ctx, api: s.r.reader(),
		recs: map[string]*recNode{}, cons: map[string]*conNode{}, links: map[string]planner.Link{},
		asked: map[string]bool{}, indexed: map[string]bool{}, comp: newComponents()}
	indexed, err := s.r.Identities.IdentitiesIndexed(ctx, s.r.ProjectID)
	if err != nil {
		return nil, err
	}
	g.complete = indexed
	if s.changed == nil {
		if s.changed, err = s.r.changedRows(ctx); err != nil {
			return nil, err
		}
	}
	g.pending = make(map[string][]string)
	for ext, rec := range s.changed {
		if want, rej := planner.Normalize(rec, s.r.Options); rej == nil && !want.Deleted {
			for _, k := range planner.LookupKeys(want.Identities) {
				g.pending[k] = append(g.pending[k], ext)
			}
		}
	}
	for ext, rec := range s.known {
		g.record(ext).read, g.record(ext).rec = true, &rec
	}
	for _, rej := range s.unread {
		n := g.record(rej.ExternalID)
		n.read, n.rej = true, &rej
	}
	for _, ext := range s.records {
		g.comp.add("r:" + ext)
		g.record(ext)
	}
	for _, id := range s.contacts {
		g.comp.add("c:" + id)
		g.contact(id)
	}
	if err := g.grow(); err != nil {
		return nil, err
	}
	return g.index()
}

func (g *growth) record(ext string) *recNode {
	n, ok := g.recs[ext]
	if !ok {
		n = &recNode{}
		g.recs[ext] = n
		g.comp.add("r:" + ext)
		g.toRead = append(g.toRead, ext)
	}
	return n
}

func (g *growth) contact(id string) *conNode {
	n, ok := g.cons[id]
	if !ok {
		n = &conNode{}
		g.cons[id] = n
		g.comp.add("c:" + id)
		g.toGet = append(g.toGet, id)
		g.toLink = append(g.toLink, id)
	}
	return n
}

// found takes a contact Sinch returned.
func (g *growth) found(c sinch.Contact) {
	n := g.contact(c.ID)
	if n.c == nil {
		n.c, n.gone = &c, false
		g.newCons = append(g.newCons, c.ID)
	}
}

// over reports whether the node's component has grown past the bound: it
// is not expanded further.
func (g *growth) over(node string) bool { return g.comp.over(node, g.s.r.scopeBound()) }

// grow reads rounds until nothing new is found.
func (g *growth) grow() error {
	for round := 0; ; round++ {
		if len(g.toRead)+len(g.toFind)+len(g.toGet)+len(g.toAsk)+len(g.toIndex)+len(g.toLink)+len(g.newCons) == 0 {
			return nil
		}
		if err := g.readRecords(); err != nil {
			return err
		}
		if err := g.readLinks(); err != nil {
			return err
		}
		if err := g.lookUpIndex(); err != nil {
			return err
		}
		if err := g.askSinch(); err != nil {
			return err
		}
		g.expandContacts()
	}
}

// readRecords reads the records queued, their links and the identities
// indexed for them, and queues what they lead to.
func (g *growth) readRecords() error {
	exts := g.toRead
	g.toRead = nil
	var fresh []string
	for _, ext := range exts {
		if !g.recs[ext].read {
			fresh = append(fresh, ext)
		}
	}
	slices.Sort(fresh)
	if len(fresh) > 0 {
		recs, err := g.s.r.CRM.RecordsByExternalID(g.ctx, g.s.r.Source, fresh)
		unread, err := unreadableRows(err)
		if err != nil {
			return fmt.Errorf("read CRM records from %s: %w", g.s.r.Source, err)
		}
		for i := range recs {
			n := g.recs[recs[i].ExternalID]
			n.read, n.rec = true, &recs[i]
		}
		for i := range unread {
			n := g.recs[unread[i].ExternalID]
			n.read, n.rej = true, &unread[i]
		}
		for _, ext := range fresh {
			if n := g.recs[ext]; !n.read {
				n.read, n.absent = true, true
			}
		}
	}
	if len(exts) == 0 {
		return nil
	}
	links, err := g.s.r.Links.LinksOf(g.ctx, g.s.r.ProjectID, exts)
	if err != nil {
		return err
	}
	for _, l := range links {
		g.link(l)
	}
	stored, err := g.s.r.Identities.RecordIdentities(g.ctx, g.s.r.ProjectID, exts)
	if err != nil {
		return err
	}
	for _, ext := range exts {
		g.expandRecord(ext, stored[ext])
	}
	return nil
}

// link takes a stored link: its record and contact are one component.
func (g *growth) link(l planner.Link) {
	if _, ok := g.links[l.ExternalID]; ok {
		return
	}
	g.links[l.ExternalID] = l
	g.record(l.ExternalID)
	g.contact(l.ContactID)
	g.comp.union("r:"+l.ExternalID, "c:"+l.ContactID)
}

// expandRecord queues what a record read leads to: the contacts carrying
// its external_id, and its identities where they are new to syncd (or all
// are asked for).
func (g *growth) expandRecord(ext string, stored []string) {
	n := g.recs[ext]
	if g.over("r:" + ext) {
		return
	}
	if !n.found {
		n.found = true
		g.toFind = append(g.toFind, ext)
	}
	if n.rec == nil {
		return
	}
	want, rej := planner.Normalize(*n.rec, g.s.r.Options)
	if rej != nil || want.Deleted {
		return
	}
	n.keys = planner.LookupKeys(want.Identities)
	for _, k := range n.keys {
		g.comp.union("r:"+ext, "k:"+k)
	}
	_, linked := g.links[ext]
	if !g.s.allIdentities && linked && slices.Equal(stored, n.keys) {
		return
	}
	g.toIndex = append(g.toIndex, n.keys...)
	g.toAsk = append(g.toAsk, want.Identities...)
}

// readLinks reads the links naming the contacts found, whose records join
// the scope.
func (g *growth) readLinks() error {
	ids := g.toLink
	g.toLink = nil
	if len(ids) == 0 {
		return nil
	}
	links, err := g.s.r.Links.LinksTo(g.ctx, g.s.r.ProjectID, ids)
	if err != nil {
		return err
	}
	for _, l := range links {
		g.link(l)
	}
	return nil
}

// lookUpIndex finds the records holding the identity keys queued.
func (g *growth) lookUpIndex() error {
	var keys []string
	for _, k := range g.toIndex {
		if !g.indexed[k] && !g.over("k:"+k) {
			g.indexed[k] = true
			keys = append(keys, k)
		}
	}
	g.toIndex = nil
	if len(keys) == 0 {
		return nil
	}
	held, err := g.s.r.Identities.RecordsHolding(g.ctx, g.s.r.ProjectID, keys)
	if err != nil {
		return err
	}
	// The index says which records held the keys when last read; each is
	// read now. One that no longer holds the key makes the component a
	// little larger than it is, which changes nothing the planner decides.
	for _, h := range held {
		g.record(h.ExternalID)
		g.comp.union("r:"+h.ExternalID, "k:"+h.Identity)
	}
	for _, k := range keys {
		for _, ext := range g.pending[k] {
			g.record(ext)
			g.comp.union("r:"+ext, "k:"+k)
		}
	}
	return nil
}

// askSinch makes the round's Sinch reads in parallel: contacts by
// external_id, by identity and by id.
func (g *growth) askSinch() error {
	find, get, ask := g.toFind, g.toGet, g.toAsk
	g.toFind, g.toGet, g.toAsk = nil, nil, nil
	var idents []sinch.ChannelIdentity
	for _, id := range ask {
		key := sinch.IdentityKey(id)
		if lk := planner.LookupKey(id); g.asked[key] || lk == "" || g.over("k:"+lk) {
			continue
		}
		g.asked[key] = true
		idents = append(idents, id)
	}
	var mu stdsync.Mutex
	var got []sinch.Contact
	var gone []string
	add := func(cs []sinch.Contact) {
		mu.Lock()
		got = append(got, cs...)
		mu.Unlock()
	}
	eg, ctx := errgroup.WithContext(g.ctx)
	eg.SetLimit(max(1, g.s.r.Concurrency))
	for _, ext := range find {
		eg.Go(func() error {
			cs, err := g.api.FindByExternalID(ctx, ext)
			if err != nil {
				return fmt.Errorf("look up %s: %w", ext, err)
			}
			add(cs)
			return nil
		})
	}
	for _, id := range idents {
		eg.Go(func() error {
			for page, err := range g.api.Pages(ctx, sinch.ListContactsRequest{PageSize: sinch.MaxPageSize, Channel: id.Channel, Identity: id.Identity}) {
				if err != nil {
					return fmt.Errorf("look up an identity on %s: %w", id.Channel, err)
				}
				add(page)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	have := make(map[string]bool, len(got))
	for _, c := range got {
		have[c.ID] = true
	}
	// The contacts to read by id that no look-up returned: a linked contact
	// whose external_id was changed or cleared by hand, a contact an event
	// names.
	var ids []string
	for _, id := range get {
		if n := g.cons[id]; n.c == nil && !n.gone && !have[id] && !g.over("c:"+id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	byID, missing, err := g.s.r.getContactsWith(g.ctx, g.api, ids)
	if err != nil {
		return err
	}
	got = append(got, byID...)
	gone = append(gone, missing...)
	slices.SortFunc(got, func(a, b sinch.Contact) int { return strings.Compare(a.ID, b.ID) })
	for _, c := range got {
		g.found(c)
	}
	for _, id := range gone {
		g.cons[id].gone = true
	}
	return nil
}

// expandContacts joins the contacts found to what they lead to.
func (g *growth) expandContacts() {
	ids := g.newCons
	g.newCons = nil
	for _, id := range ids {
		n := g.cons[id]
		c := n.c
		node := "c:" + id
		if c.ExternalID != "" {
			g.record(c.ExternalID)
			g.comp.union(node, "r:"+c.ExternalID)
		}
		keys := planner.LookupKeys(c.ChannelIdentities)
		for _, k := range keys {
			g.comp.union(node, "k:"+k)
		}
		if n.expanded || g.over(node) || g.settled(*c) {
			continue
		}
		n.expanded = true
		g.toIndex = append(g.toIndex, keys...)
		g.toAsk = append(g.toAsk, c.ChannelIdentities...)
	}
	// A contact whose record was not read yet is settled or not once it
	// is; the next round's records expand it then (expandSettled).
	g.expandSettled()
}

// expandSettled expands the contacts held back because their record was
// not read yet, once it is.
func (g *growth) expandSettled() {
	for id, n := range g.cons {
		if n.c == nil || n.expanded || n.c.ExternalID == "" {
			continue
		}
		if r, ok := g.recs[n.c.ExternalID]; !ok || !r.read || g.settled(*n.c) || g.over("c:"+id) {
			continue
		}
		n.expanded = true
		g.toIndex = append(g.toIndex, planner.LookupKeys(n.c.ChannelIdentities)...)
		g.toAsk = append(g.toAsk, n.c.ChannelIdentities...)
	}
}

// settled reports whether a contact is simply the linked contact of the
// live record whose external_id it carries, or one syncd does not own:
// neither raises an identity question. Any other (no external_id, the
// external_id of a record that is gone, a duplicate) does, and its
// identities join the scope. A contact whose record is not read yet is
// settled for now (expandSettled looks again).
func (g *growth) settled(c sinch.Contact) bool {
	if c.ExternalID == "" {
		return false
	}
	if !g.s.r.Options.Owns(c.ExternalID) {
		return true
	}
	r, ok := g.recs[c.ExternalID]
	if !ok || !r.read {
		return true
	}
	l, linked := g.links[c.ExternalID]
	return r.keys != nil && linked && l.ContactID == c.ID
}

// index builds the planner's index from the components that stayed within
// the bound, and defers the seeds of the others.
func (g *growth) index() (*planner.Index, error) {
	s, r := g.s, g.s.r
	bound := r.scopeBound()
	s.found = partialFound{keys: map[string][]string{}, records: map[string]crm.Record{}, links: map[string]planner.Link{},
		deferred: slices.Clone(s.deferred)}
	// A component that holds an identity question (a contact that is not
	// settled) is left to the full run while the identity index is not
	// built: a record holding the identity may be missing from it.
	questions := map[string]bool{}
	if !g.complete {
		for id, n := range g.cons {
			if n.c != nil && !g.settled(*n.c) {
				questions[g.comp.find("c:"+id)] = true
			}
		}
	}
	out := func(node string) (string, bool) {
		root := g.comp.find(node)
		switch {
		case g.comp.size(root) > bound:
			return fmt.Sprintf("its scope grew past %d records and contacts (sync.scope_bound)", bound), true
		case questions[root]:
			return "an identity question, and the index of the records' identities is not built yet: the first full run builds it", true
		}
		return "", false
	}
	for _, ext := range s.records {
		if why, left := out("r:" + ext); left {
			s.found.deferred = append(s.found.deferred, state.Deferral{Kind: state.DeferRecord, Key: ext, Reason: why})
		}
	}
	for _, id := range s.contacts {
		if why, left := out("c:" + id); left {
			s.found.deferred = append(s.found.deferred, state.Deferral{Kind: state.DeferContact, Key: id, Reason: why})
		}
	}

	var records []crm.Record
	var unread []planner.Rejection
	var absent []string
	for _, ext := range slices.Sorted(maps.Keys(g.recs)) {
		n := g.recs[ext]
		if _, left := out("r:" + ext); left || !n.read {
			continue
		}
		switch {
		case n.rec != nil:
			records = append(records, *n.rec)
			s.found.records[ext] = *n.rec
			s.found.keys[ext] = n.keys
		case n.rej != nil:
			unread = append(unread, *n.rej)
			s.found.keys[ext] = nil
		case n.absent:
			absent = append(absent, ext)
			s.found.keys[ext] = nil
		}
	}
	var contacts []sinch.Contact
	for _, id := range slices.Sorted(maps.Keys(g.cons)) {
		if n := g.cons[id]; n.c != nil {
			if _, left := out("c:" + id); !left {
				contacts = append(contacts, *n.c)
			}
		}
	}
	var links []planner.Link
	for _, ext := range slices.Sorted(maps.Keys(g.links)) {
		if _, left := out("r:" + ext); !left {
			links = append(links, g.links[ext])
			s.found.links[ext] = g.links[ext]
		}
	}
	links, s.found.renamed = s.moveRenamed(links, s.found.records, absent)
	s.found.contacts = contacts

	opts := r.Options
	opts.AllowMassDelete = opts.AllowMassDelete || s.noGuard
	idx := planner.NewIndex(opts, r.Source, false)
	idx.AddRecords(records)
	for _, rej := range unread {
		idx.AddUnreadable(rej)
	}
	// An external_id read and not found is gone, what a full run would
	// conclude of its contact; unless the source is empty: a broken view
	// must not delete contacts one change at a time.
	if len(absent) > 0 {
		empty, err := r.sourceEmpty(g.ctx)
		if err != nil {
			return nil, err
		}
		if !empty {
			for _, ext := range absent {
				idx.Vanish(ext)
			}
		}
	}
	idx.AddContacts(contacts)
	idx.AddLinks(links...)
	total, err := r.Links.CountLinks(g.ctx, r.ProjectID)
	if err != nil {
		return nil, err
	}
	idx.SetProjectLinks(total)
	return idx, nil
}

// moveRenamed applies the CRM's rename notifications to the links of the
// scope: the link of each renamed record moves to its new external_id, so
// that the planner finds the record's contact linked to it and re-keys it
// with one patch, whatever else changed. A rename is taken only when the old
// id is linked and gone from the source and the new one is read and not
// linked yet: the notification is a trigger, not truth. It returns the old
// ids, whose links the run drops once it has applied.
func (s *partialScope) moveRenamed(links []planner.Link, records map[string]crm.Record, absent []string) ([]planner.Link, []string) {
	if len(s.renames) == 0 {
		return links, nil
	}
	byExt := make(map[string]int, len(links))
	for i, l := range links {
		byExt[l.ExternalID] = i
	}
	var renamed []string
	for _, old := range slices.Sorted(maps.Keys(s.renames)) {
		to := s.renames[old]
		i, linked := byExt[old]
		_, taken := byExt[to]
		_, present := records[to]
		if !linked || taken || !present || !slices.Contains(absent, old) {
			continue
		}
		// No content hash: the contact still carries the old external_id,
		// so the record is never "unchanged".
		links[i] = planner.Link{ExternalID: to, ContactID: links[i].ContactID}
		byExt[to] = i
		delete(byExt, old)
		renamed = append(renamed, old)
	}
	return links, renamed
}

// components is a union-find over the nodes of a partial scope's identity
// graph ("r:" records, "c:" contacts, "k:" identities), counting the
// records and contacts of each component.
type components struct {
	parent map[string]string
	n      map[string]int // by root: records and contacts
}

func newComponents() *components {
	return &components{parent: map[string]string{}, n: map[string]int{}}
}

// add makes node a component of its own, if it is new.
func (c *components) add(node string) {
	if _, ok := c.parent[node]; ok {
		return
	}
	c.parent[node] = node
	if !strings.HasPrefix(node, "k:") {
		c.n[node] = 1
	}
}

func (c *components) find(node string) string {
	c.add(node)
	for c.parent[node] != node {
		c.parent[node] = c.parent[c.parent[node]]
		node = c.parent[node]
	}
	return node
}

func (c *components) union(a, b string) {
	ra, rb := c.find(a), c.find(b)
	if ra == rb {
		return
	}
	c.parent[ra] = rb
	c.n[rb] += c.n[ra]
	delete(c.n, ra)
}

func (c *components) size(root string) int { return c.n[root] }

// over reports whether node's component holds more than bound records and
// contacts.
func (c *components) over(node string, bound int) bool { return c.size(c.find(node)) > bound }

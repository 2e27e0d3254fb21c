package planner

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// normalized is a record as Normalize leaves it.
type normalized struct {
	want Desired
	rej  *Rejection
}

// Index is what one run read from both sides, held the one way the diff
// reads it: the CRM rows normalised, packed and indexed by external_id, the
// stored links indexed by record, and the Sinch contacts packed. It is built
// by NewIndex and its Add methods, in the order a run reads: records,
// then links, then contacts.
//
// A linked contact that is exactly what its record asks for is held as a
// seen bit on the record rather than in full: at a million contacts nearly
// all are, and that is what keeps a full run within a few hundred megabytes.
// Should the diff need such a contact after all (a duplicate or a stray is to
// be merged into it), it rebuilds it from the record when the contact is,
// to the byte, the one syncd would have created (mirrorOf), as nearly every
// contact syncd created and nobody edited is. Otherwise the plan says so in
// Fetch, and the caller adds the contact read afresh and diffs again.
type Index struct {
	opts     Options
	source   crm.Source
	complete bool

	recs       packedRecords // every source row, in the order read, normalised
	unreadable []Rejection   // rows the store could not read
	unreadOK   map[string]bool
	sealed     bool
	// live are the records that are valid, unique and not deleted, sorted
	// by external_id.
	live []row
	// keys holds one source row per external_id, sorted by external_id,
	// and states, beside it, the state of that external_id: a live record,
	// or stateKeep (rejected or duplicated rows, whose contacts are never
	// removed) or stateTombstone (deleted_at set). Two slices searched by
	// halves take 8 bytes a row where a map took 60.
	keys     []row
	states   []recState
	rejected []Rejection

	// The stored link of each live record, indexed by it. A million
	// lookups in a map of a million links would cost more than the rest of
	// the diff. Sinch's contact ids are ULIDs, held as their 16 bytes; an id
	// that is not one in its canonical spelling is held as it is, in
	// linkOdd.
	linkKind  []uint8 // linkNone, linkULID or linkOdd
	linkIDs   []ulid.ULID
	linkOdd   map[liveRec]string
	linkFresh []bool // the link's content hash is the record's
	links     int    // links stored for the project, whether or not their record was read
	vanished  map[string]bool
	// leftBehind holds the stored links of records that are not live
	// (renamed, deleted, gone), contact id to external_id: few, and what
	// a contact whose external_id was changed by hand still belongs to.
	leftBehind map[string]string

	contacts packedContacts
	// held is, by live position, how the index holds the linked
	// contact: not listed (yet), seen (listed, in sync, not kept), or in full.
	held  []uint8
	seenN int

	scratch []byte
}

// liveRec is a live record: its position in Index.live, which the slices
// kept beside live (links, held) share.
type liveRec int32

// recState is what the index knows of an external_id: a live record, or
// why there is none. It is kept for every row, so it takes the four bytes
// of a live record: the other states are numbers no live record is, which
// only these declarations know; the rest of the package asks live.
type recState int32

const (
	stateKeep      recState = -1 - iota // rejected, duplicated or unreadable rows: never remove their contacts
	stateTombstone                      // rows with deleted_at set
	stateNone                           // no record
	stateGone                           // no record, and an incremental run knows it: the row vanished
)

// liveState is the state of an external_id whose record is live.
func liveState(k liveRec) recState { return recState(k) }

// live is the live record the state names, if it names one.
func (st recState) live() (liveRec, bool) { return liveRec(st), st >= 0 }

// liveRecs is the number of live records, for ranging over them.
func (s *Index) liveRecs() liveRec { return liveRec(len(s.live)) }

// opt is a handle or none, in the handle's four bytes: the handle plus
// one, so that the zero value is none and a slice of them needs no filling.
type opt[H ~int32] struct{ plus1 uint32 }

func some[H ~int32](h H) opt[H] { return opt[H]{uint32(h) + 1} }

// get is the handle, if there is one.
func (o opt[H]) get() (H, bool) { return H(o.plus1) - 1, o.plus1 != 0 }

func (o opt[H]) none() bool { return o.plus1 == 0 }

// NewIndex starts an empty index. complete says the records will be
// the whole CRM source and the contacts the whole Sinch project, so that a
// record missing from the source counts as deleted; an incremental run reads
// only the rows that changed. source names the CRM relation, for reasons.
func NewIndex(opts Options, source crm.Source, complete bool) *Index {
	return &Index{opts: opts, source: source, complete: complete}
}

// IndexOf builds an index of both sides held whole, as tools and
// tests have them. Its contacts go in before its links, so every contact is
// held in full and Diff never asks for one (see Index).
func IndexOf(opts Options, source crm.Source, complete bool, records []crm.Record, contacts []sinch.Contact, links []Link) *Index {
	s := NewIndex(opts, source, complete)
	s.AddRecords(records)
	s.AddContacts(contacts)
	s.AddLinks(links...)
	return s
}

// AddRecords normalises and packs source rows. All records come before the
// first link or contact.
func (s *Index) AddRecords(records []crm.Record) {
	if s.sealed {
		panic("sync: Index.AddRecords after links or contacts")
	}
	for _, rec := range records {
		want, rej := Normalize(rec, s.opts)
		s.scratch = s.recs.add(normalized{want: want, rej: rej}, s.scratch)
	}
}

// AddUnreadable records a source row the store could not read: it is
// rejected and its contact is kept.
func (s *Index) AddUnreadable(rej Rejection) {
	if s.sealed {
		panic("sync: Index.AddUnreadable after links or contacts")
	}
	s.unreadable = append(s.unreadable, rej)
}

// AddLinks indexes stored links. Links of records the index does not
// hold as live are counted (the delete guard of an incremental run weighs
// its deletes against them), and those of records it knows are not live
// (a full run knows every record) kept as left behind.
func (s *Index) AddLinks(links ...Link) {
	s.seal()
	for _, l := range links {
		s.links++
		st, known := s.lookup(l.ExternalID)
		if k, ok := st.live(); ok {
			s.setLinked(k, l.ContactID)
			s.linkFresh[k] = s.recs.hashIs(s.live[k], l.ContentHash)
		} else if l.ContactID != "" && (known || s.complete) {
			// A link of a record an incremental run did not read says
			// nothing about the record being gone.
			if s.leftBehind == nil {
				s.leftBehind = make(map[string]string)
			}
			s.leftBehind[l.ContactID] = l.ExternalID
		}
	}
}

// SetProjectLinks says how many links the project stores in all, when the
// index holds those of a partial run's scope only: the delete guard weighs a
// partial run's deletes against the whole project.
func (s *Index) SetProjectLinks(n int) { s.links = max(s.links, n) }

// AddContacts packs Sinch contacts, or marks them seen (see Index). A
// contact added again, read afresh after a plan asked for it, takes the
// place of its seen bit.
func (s *Index) AddContacts(contacts []sinch.Contact) {
	s.seal()
	for i, c := range contacts {
		if k, ok := s.liveOf(c.ExternalID); ok && c.ID != "" && s.linkedIs(k, c.ID) {
			switch s.held[k] {
			case heldSeen, heldMirror:
				// Read again on request, or listed twice (a list that
				// shifted while it was paged): held in full from now on.
				s.seenN--
				s.held[k] = heldFull
			case heldEarly, heldSkip:
				continue // listed again while its early patch is under way, or done with
			case heldNone:
				s.held[k] = heldFull
				if s.linkFresh[k] {
					want := s.want(k)
					if _, mask, _ := patchFor(c, want, false); len(mask) == 0 {
						s.holdSeen(k, c, &want)
						continue
					}
				}
			}
		}
		// One at a time, into the arena: a page's contacts to keep are not
		// gathered into a slice of their own first.
		s.contacts.add(contacts[i : i+1])
	}
}

// How an index holds the linked contact of a record.
const (
	heldNone   uint8 = iota
	heldSeen         // listed, in sync, not kept: read again should the diff need it
	heldMirror       // listed, exactly mirrorOf its record, not kept: rebuilt should the diff need it
	heldFull         // kept in full
	heldEarly        // listed with drift; its patch was sent while the list went on
	heldSkip         // its early patch did not land: the run leaves the record alone
)

// holdSeen holds the linked contact c of live record k, which is what want
// asks for, as a seen bit.
func (s *Index) holdSeen(k liveRec, c sinch.Contact, want *Desired) {
	s.held[k] = heldSeen
	if isMirror(c, want, s.opts) {
		s.held[k] = heldMirror
	}
	s.seenN++
}

// Page takes a page of listed contacts, as a full run that applies reads
// them, and returns the patches to send at once: those of linked contacts
// that differ from their record. No later page can change what such a patch
// must be, since a duplicate or a stray found later is merged into the
// patched contact (which the diff then asks for afresh). Each patch is to be
// settled (Settle) once Sinch has answered it, before the final Diff. The
// rest of the page is added as AddContacts adds it; the page itself is
// reused for that, so that a page of contacts in sync allocates nothing.
func (s *Index) Page(page []sinch.Contact) []Operation {
	var early []Operation
	rest := page[:0]
	for _, c := range page {
		op, drift, seen := s.drifted(c)
		switch {
		case seen:
		case drift:
			early = append(early, op)
		default:
			rest = append(rest, c)
		}
	}
	s.AddContacts(rest)
	return early
}

// drifted takes a listed contact that is the linked contact of a live
// record and differs from it: it returns the patch, and drift set. A
// contact that is in sync and would be held as a seen bit (see AddContacts)
// is held so at once, with seen set, and is not to be added: the record it
// was compared with is not unpacked a second time.
func (s *Index) drifted(c sinch.Contact) (op Operation, drift, seen bool) {
	k, ok := s.liveOf(c.ExternalID)
	if !ok || c.ID == "" || !s.linkedIs(k, c.ID) || s.held[k] != heldNone {
		return Operation{}, false, false
	}
	want := s.want(k)
	op, drift = patchOperation(c, &want, RuleDrift, "the contact differs from the CRM record")
	switch {
	case drift:
		s.held[k] = heldEarly
	case s.linkFresh[k]:
		// No patch, and c carries the record's external_id: what
		// AddContacts finds in sync.
		s.holdSeen(k, c, &want)
		seen = true
	}
	return op, drift, seen
}

// Settle records the answer to a patch Page returned: the contact as Sinch
// returned it, or nil when the patch did not land, in which case the plan
// leaves the record alone (the run does not send it again).
func (s *Index) Settle(externalID string, answer *sinch.Contact) {
	k, ok := s.liveOf(externalID)
	if !ok || s.held[k] != heldEarly {
		return
	}
	if answer == nil {
		s.held[k] = heldSkip
		return
	}
	s.held[k] = heldNone
	s.AddContacts([]sinch.Contact{*answer})
}

// seenContact reports whether live record k's linked contact is held as a
// seen bit only.
func (s *Index) seenContact(k liveRec) bool { return s.held[k] == heldSeen || s.held[k] == heldMirror }

// seal indexes the records once all are in: duplicates, rejects,
// tombstones and the live records.
func (s *Index) seal() {
	if s.sealed {
		return
	}
	s.sealed = true
	p := &s.recs
	n := p.len()
	// Walk the records in external_id order, so that duplicates sit side
	// by side and live records come out sorted. A full run reads the source
	// in that order, so the sort is usually a check.
	exts := make([]string, n) // pointing into the arena
	for i := range exts {
		exts[i] = p.externalID(row(i))
	}
	order := make([]row, n)
	for i := range order {
		order[i] = row(i)
	}
	byExt := func(a, b row) int { return strings.Compare(exts[a], exts[b]) }
	if !slices.IsSortedFunc(order, byExt) {
		slices.SortStableFunc(order, byExt)
	}
	type pending struct {
		at  row // the row the rejection is reported at
		rej Rejection
	}
	var rejected []pending
	// Sized for every row: nearly all are live in a sound source, and
	// growing to that by appends would allocate each twice over.
	s.keys = slices.Grow(s.keys[:0], n)
	s.states = slices.Grow(s.states[:0], n)
	s.live = slices.Grow(s.live[:0], n)
	for start := 0; start < len(order); {
		ext := exts[order[start]]
		end := start + 1
		for end < len(order) && exts[order[end]] == ext {
			end++
		}
		group := order[start:end]
		start = end
		s.keys = append(s.keys, group[0])
		if n := len(group); n > 1 {
			s.states = append(s.states, stateKeep)
			rejected = append(rejected, pending{at: slices.Min(group), rej: Rejection{
				ExternalID: ext, Column: "external_id",
				Reason: fmt.Sprintf("appears %d times in the source; fix the CRM so that it is unique", n),
			}})
			continue
		}
		i := group[0]
		switch {
		case p.rejection(i) != nil:
			s.states = append(s.states, stateKeep)
			rejected = append(rejected, pending{at: i, rej: *p.rejection(i)})
		case p.deleted(i):
			s.states = append(s.states, stateTombstone)
		default:
			s.states = append(s.states, liveState(s.liveRecs()))
			s.live = append(s.live, i)
		}
	}
	s.keys, s.states = slices.Clip(s.keys), slices.Clip(s.states)
	s.live = slices.Clip(s.live)
	slices.SortFunc(rejected, func(a, b pending) int { return cmp.Compare(a.at, b.at) })
	s.rejected = make([]Rejection, len(rejected))
	for i, r := range rejected {
		s.rejected[i] = r.rej
	}
	// A row that could not be read keeps its contact, unless the source
	// also gave a readable live row with that external_id.
	for _, rej := range s.unreadable {
		if st, ok := s.lookup(rej.ExternalID); !ok || st == stateTombstone {
			if s.unreadOK == nil {
				s.unreadOK = make(map[string]bool)
			}
			s.unreadOK[rej.ExternalID] = true
		}
	}
	s.linkKind = make([]uint8, len(s.live))
	s.linkIDs = make([]ulid.ULID, len(s.live))
	s.linkFresh = make([]bool, len(s.live))
	s.held = make([]uint8, len(s.live))
	s.scratch = nil
}

// vanish records that the source no longer holds a row with this
// external_id, which an incremental run learns from its links.
func (s *Index) Vanish(externalID string) {
	if s.vanished == nil {
		s.vanished = make(map[string]bool)
	}
	s.vanished[externalID] = true
}

// forget records that contacts a plan asked for are gone from Sinch: their
// records no longer have a linked contact held as seen.
func (s *Index) Forget(ids []string) {
	if len(ids) == 0 {
		return
	}
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	var buf [ulid.EncodedSize]byte
	for k := range s.liveRecs() {
		if s.held[k] == heldSeen && gone[string(s.appendLinked(buf[:0], k))] {
			s.held[k] = heldFull
			s.seenN--
		}
	}
}

// want is live record k, unpacked.
func (s *Index) want(k liveRec) Desired { return s.recs.desired(s.live[k]) }

// How an index holds the contact id of a record's link.
const (
	linkNone uint8 = iota
	linkULID       // in linkIDs
	linkOdd        // in linkOdd: not a ULID as Sinch spells them
)

// setLinked stores the contact id of live record k's link.
func (s *Index) setLinked(k liveRec, id string) {
	if u, err := ulid.ParseStrict(id); err == nil {
		var spelled [ulid.EncodedSize]byte
		_ = u.MarshalTextTo(spelled[:])
		if string(spelled[:]) == id { // the canonical spelling: upper case
			s.linkKind[k], s.linkIDs[k] = linkULID, u
			delete(s.linkOdd, k)
			return
		}
	}
	if s.linkOdd == nil {
		s.linkOdd = make(map[liveRec]string)
	}
	s.linkKind[k], s.linkOdd[k] = linkOdd, id
}

// linked is the contact id live record k is linked to, "" when none.
func (s *Index) linked(k liveRec) string {
	switch s.linkKind[k] {
	case linkULID:
		return s.linkIDs[k].String()
	case linkOdd:
		return s.linkOdd[k]
	}
	return ""
}

// appendLinked appends the contact id live record k is linked to, for
// comparisons and map look-ups that need not allocate.
func (s *Index) appendLinked(b []byte, k liveRec) []byte {
	switch s.linkKind[k] {
	case linkULID:
		var spelled [ulid.EncodedSize]byte
		_ = s.linkIDs[k].MarshalTextTo(spelled[:])
		return append(b, spelled[:]...)
	case linkOdd:
		return append(b, s.linkOdd[k]...)
	}
	return b
}

// linkedIs reports whether live record k is linked to contact id.
func (s *Index) linkedIs(k liveRec, id string) bool {
	var buf [ulid.EncodedSize]byte
	return string(s.appendLinked(buf[:0], k)) == id
}

// hasLink reports whether live record k has a stored link.
func (s *Index) hasLink(k liveRec) bool { return s.linkKind[k] != linkNone }

// liveLinked reports whether st is a live record linked to contact id.
func (s *Index) liveLinked(st recState, id string) bool {
	k, ok := st.live()
	return ok && s.linkedIs(k, id)
}

// recordState is the state of the record with this external_id.
func (s *Index) recordState(ext string) recState {
	if s.unreadOK[ext] {
		return stateKeep
	}
	st, _ := s.lookup(ext)
	return st
}

// lookup is the state of the external_id in the source: stateGone for one
// an incremental run knows vanished; stateNone and false when the index
// knows nothing of it.
func (s *Index) lookup(ext string) (recState, bool) {
	i, found := slices.BinarySearchFunc(s.keys, ext, func(r row, ext string) int {
		return strings.Compare(s.recs.externalID(r), ext)
	})
	switch {
	case found:
		return s.states[i], true
	case s.vanished[ext]:
		return stateGone, true
	}
	return stateNone, false
}

// liveOf is the live record with this external_id, if the index holds one.
func (s *Index) liveOf(ext string) (liveRec, bool) {
	st, _ := s.lookup(ext)
	return st.live()
}

// contactByID returns the contact with this id that the index holds in
// full, or as a mirror of the record with this external_id (rebuilt, as the
// diff rebuilt it).
func (s *Index) contactByID(externalID, id string) (sinch.Contact, bool) {
	if i, ok := s.contacts.index(id); ok {
		return s.contacts.contact(i), true
	}
	if k, ok := s.liveOf(externalID); ok && s.held[k] == heldMirror && s.linkedIs(k, id) {
		want := s.want(k)
		return mirrorOf(&want, id, s.opts), true
	}
	return sinch.Contact{}, false
}

// RecordState says what the index knows of the CRM record with this
// external_id: RecordLive, RecordDeleted or RecordAbsent (rejected rows are
// live: their contacts are kept).
func (s *Index) RecordState(externalID string) string {
	s.seal()
	switch s.recordState(externalID) {
	case stateTombstone:
		return RecordDeleted
	case stateNone, stateGone:
		return RecordAbsent
	}
	return RecordLive
}

// Record states, as RecordState names them.
const (
	RecordLive    = "live"
	RecordDeleted = "deleted"
	RecordAbsent  = "absent"
)

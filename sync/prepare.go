package sync

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// normalized is a record as Normalize leaves it.
type normalized struct {
	want Desired
	rej  *Rejection
}

// prepared is the CRM side of a snapshot normalised, packed and indexed:
// what the diff needs from it, built while a full run is still listing
// contacts (the records as they stream in), and shared read-only by the
// early patches and the diff.
type prepared struct {
	recs packedRecords // every source row, in source order, normalised
	// live are the records that are valid, unique and not deleted, as
	// indexes into recs, sorted by external_id.
	live []int32
	// state maps every external_id of the source to its position in live,
	// or to stateKeep (rejected or duplicated rows, whose contacts are
	// never deleted) or stateTombstone (deleted_at set).
	state map[string]int32
	// rejected are the rows rejected, in the order the source gave them.
	rejected []Rejection

	// The stored link of each live record, looked up once the links are
	// read (see addLink, withLinks): a million lookups in a map of a million
	// links cost more than the rest of the diff, and need not wait for the
	// list chain.
	linkedAt  []uint32 // by position in live: where linkIDs holds the linked contact id, +1; 0 when none
	linkIDs   []byte   // linked contact ids, each after its length
	linkFresh []bool   // by position in live: the link's content hash is the record's
	links     int      // links indexed; -1: not indexed

	scratch []byte
}

func newPrepared() *prepared { return &prepared{links: -1} }

// add normalises and packs a batch of source rows.
func (p *prepared) add(records []crm.Record, opts Options) {
	for _, rec := range records {
		want, rej := Normalize(rec, opts)
		p.scratch = p.recs.add(normalized{want: want, rej: rej}, p.scratch)
	}
}

// Prepare normalises and indexes the snapshot's records and links once, as
// a full run does while it reads them (overlapped with the Sinch list
// chain), so that Diff only compares. opts must be the options Diff is then
// given, and Records and Links must not change afterwards.
func (s *Snapshot) Prepare(opts Options) {
	p := newPrepared()
	p.add(s.Records, opts)
	p.index()
	p.withLinks(s.Links)
	s.prep = p
}

// Lean holds the snapshot as a full run does: the records normalised,
// packed and indexed as Prepare leaves them, the contacts packed, and
// Records and Contacts dropped. Diff plans the same from it.
func (s *Snapshot) Lean(opts Options) {
	s.Prepare(opts)
	s.packed = &packedContacts{}
	s.packed.add(s.Contacts)
	s.Records, s.Contacts = nil, nil
	if s.Complete {
		s.Links = nil // indexed; an incremental run's guard still counts them
	}
}

// want is the k-th live record.
func (p *prepared) want(k int) Desired { return p.recs.desired(int(p.live[k])) }

// lookup returns the live record with this external_id and its stored
// link's contact id.
func (p *prepared) lookup(externalID string) (want Desired, linked string, ok bool) {
	k, ok := p.state[externalID]
	if !ok || k < 0 {
		return Desired{}, "", false
	}
	return p.want(int(k)), p.linked(int(k)), true
}

// addLink indexes one stored link.
func (p *prepared) addLink(l crm.Link) {
	if p.linkedAt == nil {
		p.linkedAt = make([]uint32, len(p.live))
		p.linkFresh = make([]bool, len(p.live))
		p.links = 0
	}
	p.links++
	if k, ok := p.state[l.ExternalID]; ok && k >= 0 {
		p.setLink(int(k), l)
	}
}

func (p *prepared) setLink(k int, l crm.Link) {
	p.linkedAt[k] = uint32(len(p.linkIDs)) + 1
	p.linkIDs = appendPackedString(p.linkIDs, l.ContactID)
	p.linkFresh[k] = p.recs.hashIs(int(p.live[k]), l.ContentHash)
}

// linked is the contact id the k-th live record is linked to, "" when none.
func (p *prepared) linked(k int) string {
	if p.linkedAt == nil || p.linkedAt[k] == 0 {
		return ""
	}
	r := packedReader{b: p.linkIDs, off: int(p.linkedAt[k] - 1)}
	return r.str()
}

// withLinks indexes the stored links of the live records.
func (p *prepared) withLinks(links map[string]crm.Link) {
	p.linkedAt = make([]uint32, len(p.live))
	p.linkFresh = make([]bool, len(p.live))
	for k, i := range p.live {
		if l, ok := links[p.recs.externalID(int(i))]; ok {
			p.setLink(k, l)
		}
	}
	p.links = len(links)
}

// link returns the stored link of the k-th live record: its contact id and
// whether its content hash is the record's. links is the snapshot's map of
// them, nil when the run only indexed them.
func (p *prepared) link(k int, links map[string]crm.Link) (contactID string, fresh bool) {
	if p.links >= 0 && (links == nil || len(links) == p.links) {
		if p.linkedAt == nil {
			return "", false // no links at all
		}
		return p.linked(k), p.linkFresh[k]
	}
	i := int(p.live[k])
	l := links[p.recs.externalID(i)]
	return l.ContactID, p.recs.hashIs(i, l.ContentHash)
}

// index sorts out the rows once all are in: duplicates, rejects,
// tombstones and the live records.
func (p *prepared) index() {
	n := p.recs.len()
	p.state = make(map[string]int32, n)
	// Walk the records in external_id order, so that duplicates sit side
	// by side and live records come out sorted. The source is read in that
	// order, so the sort is usually a check.
	exts := make([]string, n) // pointing into the arena
	for i := range exts {
		exts[i] = p.recs.externalID(i)
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	byExt := func(a, b int32) int { return strings.Compare(exts[a], exts[b]) }
	if !slices.IsSortedFunc(order, byExt) {
		slices.SortStableFunc(order, byExt)
	}
	type pending struct {
		at  int32 // source position of the row the rejection is reported at
		rej Rejection
	}
	var rejected []pending
	for start := 0; start < len(order); {
		ext := exts[order[start]]
		end := start + 1
		for end < len(order) && exts[order[end]] == ext {
			end++
		}
		group := order[start:end]
		start = end
		if n := len(group); n > 1 {
			p.state[ext] = stateKeep
			rejected = append(rejected, pending{at: slices.Min(group), rej: Rejection{
				ExternalID: ext, Column: "external_id",
				Reason: fmt.Sprintf("appears %d times in the source; fix the CRM so that it is unique", n),
			}})
			continue
		}
		i := group[0]
		switch {
		case p.recs.rejection(int(i)) != nil:
			p.state[ext] = stateKeep
			rejected = append(rejected, pending{at: i, rej: *p.recs.rejection(int(i))})
		case p.recs.deleted(int(i)):
			p.state[ext] = stateTombstone
		default:
			p.state[ext] = int32(len(p.live))
			p.live = append(p.live, i)
		}
	}
	p.live = slices.Clip(p.live)
	slices.SortFunc(rejected, func(a, b pending) int { return cmp.Compare(a.at, b.at) })
	p.rejected = make([]Rejection, len(rejected))
	for i, r := range rejected {
		p.rejected[i] = r.rej
	}
	p.scratch = nil
}

// identities calls fn with each identity of the k-th live record, unpacking
// nothing else.
func (p *prepared) identities(k int, fn func(sinch.ChannelIdentity)) {
	p.recs.eachIdentity(int(p.live[k]), fn)
}

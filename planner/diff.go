package planner

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"

	"github.com/syncd/syncd/sinch"
)

// Diff computes the operations that align Sinch with the CRM, under the
// options the index was built with. It is a pure function of the
// index: it reads nothing and sends nothing. A plan whose Fetch is not
// empty depends on contacts the index holds only as seen: add them, read
// afresh, and diff again before acting on it.
func Diff(s *Index) Plan {
	s.seal()
	d := differ{idx: s, opts: s.opts}
	d.plan.Rejected = append(slices.Clone(s.unreadable), s.rejected...)
	slices.SortStableFunc(d.plan.Rejected, func(a, b Rejection) int { return strings.Compare(a.ExternalID, b.ExternalID) })
	d.index()
	d.claim()
	d.settleLeftBehind()
	for k := range s.liveRecs() {
		d.reconcile(k)
	}
	d.remove()
	d.guardCarriers()
	d.breakSwaps()
	d.sharedIdentities()
	if len(d.plan.Fetch) == 0 {
		d.plan.Groups = Order(d.plan.Operations)
		d.plan.Detach()
	}
	return d.plan
}

// maxSharedNotes bounds the notes about records that share an identity.
const maxSharedNotes = 20

// sharedIdentities notes the live records that hold the same identity (two
// CRM rows with one phone number, say): each gets a contact of its own, and
// Sinch reports the two as a duplication. A partial run's scope holds every
// record that shares an identity with one it holds. Identities are compared by a 64-bit hash first, sorted, so that a million
// records cost 16 MB for a moment rather than a map of every number.
func (d *differ) sharedIdentities() {
	s := d.idx
	type entry struct {
		h uint64
		k liveRec
	}
	entries := make([]entry, 0, len(s.live))
	var key []byte
	hash := fnv.New64a()
	for k, rec := range s.live {
		var prev string
		s.recs.eachIdentity(rec, func(id sinch.ChannelIdentity) {
			// A phone number counts once, whatever channels carry it.
			if sinch.IsPhoneChannel(id.Channel) {
				if id.Identity == prev {
					return
				}
				prev = id.Identity
				id.Channel = "SMS"
			}
			key = sinch.AppendIdentityKey(key[:0], id)
			hash.Reset()
			_, _ = hash.Write(key)
			entries = append(entries, entry{h: hash.Sum64(), k: liveRec(k)})
		})
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Or(cmp.Compare(a.h, b.h), cmp.Compare(a.k, b.k)) })
	var pairs [][2]liveRec
	for i := 1; i < len(entries); i++ {
		if a, b := entries[i-1], entries[i]; a.h == b.h && a.k != b.k && d.share(a.k, b.k) {
			if p := [2]liveRec{a.k, b.k}; !slices.Contains(pairs, p) {
				pairs = append(pairs, p)
			}
		}
	}
	for i, p := range pairs {
		if i == maxSharedNotes {
			d.plan.Notes = append(d.plan.Notes, fmt.Sprintf("%d more pairs of CRM records share an identity", len(pairs)-i))
			break
		}
		d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
			"%s and %s share an identity (the same phone number, say): each gets a contact of its own holding it, which Sinch reports as a duplication",
			s.recs.externalID(s.live[p[0]]), s.recs.externalID(s.live[p[1]])))
	}
}

// share reports whether two live records hold an identity in common, the
// check behind a hash match.
func (d *differ) share(a, b liveRec) bool {
	var ids []sinch.ChannelIdentity
	d.idx.recs.eachIdentity(d.idx.live[a], func(id sinch.ChannelIdentity) { ids = append(ids, id) })
	found := false
	d.idx.recs.eachIdentity(d.idx.live[b], func(id sinch.ChannelIdentity) {
		found = found || slices.ContainsFunc(ids, func(have sinch.ChannelIdentity) bool {
			return have.Identity == id.Identity && (sinch.IsPhoneChannel(have.Channel) && sinch.IsPhoneChannel(id.Channel) || sinch.SameIdentity(have, id))
		})
	})
	return found
}

// A diff of a million records against a million contacts must stay within
// a few hundred bytes and a couple of microseconds a pair, so its indexes
// are compact: per live record the contact it owns, and maps keyed by
// contact only for the few contacts that need them (unlinked ones,
// duplicates, orphans).

type differ struct {
	idx  *Index
	opts Options
	plan Plan

	owner  []opt[slot]        // live record -> the first contact it owns
	extra  map[liveRec][]slot // live record -> further contacts it owns
	pool   map[string][]slot  // contacts a record may adopt or merge by identity, by identity key
	claims map[slot]string    // pool contact -> the one record that may take it
	taken  map[slot]bool      // pool contacts adopted or merged by a record
	// leftAlone are the live records whose linked contact now carries an
	// external_id syncd does not own (see alone).
	leftAlone map[liveRec]bool
	// candidates are owned contacts whose record is deleted or gone: they
	// are removed unless a record takes them over (a rename).
	candidates []slot
	key        []byte // scratch for identity keys
	// leftBehind are contacts linked to a record no longer live that carry
	// another live record's external_id: that record.
	leftBehind map[slot]liveRec
	// foreign are contacts that carry a live record's external_id but are
	// another record's: linked to it (a hand edit), or left behind (see
	// guardCarriers).
	foreign []slot
	// claimer marks the live records that some pool contact's claim names,
	// the only ones that can have strays.
	claimer []bool
}

// contactRef is a contact the diff weighs for a record: one the index
// holds in full, or a record's linked contact held as a mirror (see Index),
// which is rebuilt from the record whenever it is read rather than kept.
type contactRef struct {
	at      slot    // held in full: its slot
	of      liveRec // rebuilt: the record whose linked contact it is
	rebuilt bool
}

func heldRef(i slot) contactRef { return contactRef{at: i} }

func mirrorRef(k liveRec) contactRef { return contactRef{of: k, rebuilt: true} }

// heldRefs appends references to contacts held in full.
func heldRefs(refs []contactRef, slots []slot) []contactRef {
	for _, i := range slots {
		refs = append(refs, heldRef(i))
	}
	return refs
}

// contact is the contact c refers to, unpacked or rebuilt.
func (d *differ) contact(c contactRef) sinch.Contact {
	if c.rebuilt {
		want := d.idx.want(c.of)
		return mirrorOf(&want, d.idx.linked(c.of), d.opts)
	}
	return d.idx.contacts.contact(c.at)
}

// id is the id of the contact c refers to, unpacking nothing else.
func (d *differ) id(c contactRef) string {
	if c.rebuilt {
		return d.idx.linked(c.of)
	}
	id, _ := d.idx.contacts.ids(c.at)
	return id
}

// index sorts every contact held in full to the record that owns it, the
// pool of contacts records may take by identity, or the removal candidates.
//
// A contact belongs to the record it is linked to whatever external_id it
// carries now: a person in the Sinch dashboard who sets a linked contact's
// external_id to another record's, or clears it, has not made it someone
// else, and the patch that follows puts the external_id back. So a contact
// is never merged away while it is the stored link of another live record.
// Nor has a hand edit that keys the contact of a gone record to a live one
// made it that one's at once: a record renamed from the gone one takes it
// over by identity first, and the live one keeps its own (renamed from
// another, say); only a contact no such record claims is the live one's
// (settleLeftBehind).
func (d *differ) index() {
	s := d.idx
	n := s.contacts.slots()
	d.owner = make([]opt[slot], len(s.live))
	own := d.own
	// Contacts that are not simply their record's linked one may be the
	// linked contact of another record: find those in one pass over the
	// links.
	states := make([]recState, n)
	// The contacts that are odd, by id: the live record linked to each,
	// once the pass over the links has found it.
	var odd map[string]opt[liveRec]
	var carries map[slot]liveRec // left-behind contacts: the live record whose external_id each carries
	for i := range n {
		id, ext := s.contacts.ids(i)
		st := stateNone
		if ext != "" {
			st = s.recordState(ext)
		}
		if gone, ok := s.leftBehind[id]; ok {
			if k, live := st.live(); live && !s.linkedIs(k, id) {
				// The stored link of a record no longer live, carrying
				// another record's external_id by a hand edit: still the
				// first one's, unless a live record is linked to it too
				// (see below).
				if carries == nil {
					carries = make(map[slot]liveRec)
				}
				carries[i] = k
				st = s.recordState(gone)
			}
		}
		states[i] = st
		if !s.liveLinked(st, id) {
			if odd == nil {
				odd = make(map[string]opt[liveRec])
			}
			odd[id] = opt[liveRec]{}
		}
	}
	if len(odd) > 0 {
		var buf [ulid.EncodedSize]byte
		for k := range s.liveRecs() {
			if s.hasLink(k) {
				if by, ok := odd[string(s.appendLinked(buf[:0], k))]; ok && by.none() {
					odd[s.linked(k)] = some(k)
				}
			}
		}
	}
	d.pool = make(map[string][]slot)
	// The links of gone records whose contact stands for a live record now,
	// or is not held at all: stale (retireLinks).
	var standing map[string]bool
	for i := range n {
		id, ext := s.contacts.ids(i)
		st := states[i]
		if _, ok := s.leftBehind[id]; ok {
			if standing == nil {
				standing = make(map[string]bool)
			}
			_, linked := odd[id].get()
			standing[id] = !linked && !s.liveLinked(st, id)
		}
		if k, linked := odd[id].get(); linked && st != liveState(k) {
			// The stored link of another live record.
			if ext != "" && !d.opts.Owns(ext) {
				d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
					"contact %s, linked to %s, now carries external_id %q, which syncd does not own: left alone",
					id, s.recs.externalID(s.live[k]), ext))
				d.hold(k)
				continue
			}
			_, live := st.live()
			if c, carried := carries[i]; carried && c != k || !carried && live {
				d.foreign = append(d.foreign, i)
			}
			own(k, i)
			continue
		}
		if k, ok := carries[i]; ok {
			// For a record renamed from the gone one to take over by
			// identity. If none does, it is mostly the record's whose
			// external_id it carries (settleLeftBehind says when):
			// deleting it for a new one would lose its conversations on a
			// guess.
			if d.leftBehind == nil {
				d.leftBehind = make(map[slot]liveRec)
			}
			d.leftBehind[i] = k
		}
		k, live := st.live()
		switch {
		case live:
			own(k, i)
		case ext == "":
			d.addToPool(i)
		case !d.opts.Owns(ext) || st == stateKeep:
			// Not syncd's, or its row is unreadable or rejected.
		case d.idx.complete || st == stateTombstone || st == stateGone:
			d.candidates = append(d.candidates, i)
			// A record renamed in the CRM leaves its contact behind under
			// the old external_id; the record under its new one takes it
			// over by identity rather than deleting and creating anew. So
			// does any record, from a contact unlink frees.
			if st == stateNone || st == stateGone || d.opts.DeletePolicy == DeletePolicyUnlink {
				d.addToPool(i)
			}
		default:
			// Owned, of a record this incremental run did not read: a
			// record that would take it waits for the full run.
			d.addToPool(i)
		}
	}
	d.retireLinks(standing)
}

// retireLinks plans to drop the stored links of gone records whose contact
// no longer stands for them: one a live record's link names (a rename
// re-keyed), or one Sinch does not hold (deleted by hand, merged away): a
// full run lists every contact, and a partial run reads the contact of every
// link it holds. Left, each would cost every incremental run a look-up for
// its vanished row, for ever.
func (d *differ) retireLinks(standing map[string]bool) {
	s := d.idx
	for id, ext := range s.leftBehind {
		if !retirable(s.recordState(ext)) {
			continue
		}
		if stands, held := standing[id]; held && stands {
			continue
		}
		d.plan.Unlinks = append(d.plan.Unlinks, ext)
	}
	slices.Sort(d.plan.Unlinks)
}

// retirable reports whether a link of a record in this state may go once
// its contact is no longer the record's: the record is deleted or gone,
// not merely unreadable.
func retirable(st recState) bool {
	return st == stateNone || st == stateGone || st == stateTombstone
}

// retires is the external_id of the gone record whose stored link names
// the contact the operation takes over, if any.
func (d *differ) retires(contactID string) string {
	if ext, ok := d.idx.leftBehind[contactID]; ok && retirable(d.idx.recordState(ext)) {
		return ext
	}
	return ""
}

// own makes contact i one of live record k's.
func (d *differ) own(k liveRec, i slot) {
	if d.owner[k].none() {
		d.owner[k] = some(i)
		return
	}
	if d.extra == nil {
		d.extra = make(map[liveRec][]slot)
	}
	d.extra[k] = append(d.extra[k], i)
}

// owns reports whether live record k owns contact i.
func (d *differ) owns(k liveRec, i slot) bool {
	first, ok := d.owner[k].get()
	return ok && first == i || slices.Contains(d.extra[k], i)
}

// settleLeftBehind gives each left-behind contact that no record claimed
// by identity to the record whose external_id it carries, as if the record
// it was linked to had never been, unless that record claims a gone
// record's contact of its own (it was renamed): then the left-behind one is
// only its gone record's, removed with it.
func (d *differ) settleLeftBehind() {
	if len(d.leftBehind) == 0 {
		return
	}
	renamed := make(map[string]bool)
	for i, ext := range d.claims {
		if _, carried := d.idx.contacts.ids(i); carried != "" && d.opts.DeletePolicy != DeletePolicyUnlink {
			renamed[ext] = true
		}
	}
	var given []slot
	for _, i := range slices.Sorted(maps.Keys(d.leftBehind)) {
		if _, claimed := d.claims[i]; claimed {
			continue
		}
		k := d.leftBehind[i]
		if d.alone(k) || renamed[d.idx.recs.externalID(d.idx.live[k])] {
			continue
		}
		d.own(k, i)
		given = append(given, i)
	}
	d.candidates = slices.DeleteFunc(d.candidates, func(i slot) bool { return slices.Contains(given, i) })
}

// hold leaves live record k alone (see alone): its linked contact now
// carries an external_id syncd does not own, so it cannot be touched.
func (d *differ) hold(k liveRec) {
	if d.leftAlone == nil {
		d.leftAlone = make(map[liveRec]bool)
	}
	d.leftAlone[k] = true
}

// alone reports whether live record k is left alone: neither planned nor
// given a contact. A record held so is still planned when it owns a
// contact after all (one carrying its external_id), which serves it in
// place of the one that cannot be touched.
func (d *differ) alone(k liveRec) bool {
	return len(d.leftAlone) > 0 && d.owner[k].none() && d.leftAlone[k]
}

func (d *differ) addToPool(i slot) {
	for _, id := range d.idx.contacts.contact(i).ChannelIdentities {
		key := sinch.IdentityKey(id)
		if n := len(d.pool[key]); n == 0 || d.pool[key][n-1] != i {
			d.pool[key] = append(d.pool[key], i)
		}
	}
}

// poolWith returns the pool contacts holding the identity.
func (d *differ) poolWith(id sinch.ChannelIdentity) []slot {
	if len(d.pool) == 0 {
		return nil
	}
	d.key = sinch.AppendIdentityKey(d.key[:0], id)
	return d.pool[string(d.key)]
}

// claim decides which pool contacts a record may adopt or merge. A contact
// that holds identities of two records belongs to neither: merging it would
// join two people into one.
func (d *differ) claim() {
	s := d.idx
	claimants := make(map[slot][]string)
	if len(d.pool) > 0 {
		for _, rec := range s.live {
			ext := s.recs.externalID(rec)
			s.recs.eachIdentity(rec, func(id sinch.ChannelIdentity) {
				for _, i := range d.poolWith(id) {
					if c := claimants[i]; len(c) == 0 || c[len(c)-1] != ext {
						claimants[i] = append(c, ext)
					}
				}
			})
		}
	}
	d.claims = make(map[slot]string, len(claimants))
	d.taken = make(map[slot]bool)
	for _, i := range slices.Sorted(maps.Keys(claimants)) {
		who := claimants[i]
		id, carried := s.contacts.ids(i)
		if carried != "" && d.opts.DeletePolicy != DeletePolicyUnlink {
			// A contact a gone record left behind belongs to the record
			// holding its identity that has no contact of its own: the
			// record renamed. With two such records, whose it is would be a
			// guess: it is removed as its record is gone, as it would be
			// without them, and each of them gets a contact of its own.
			who = slices.DeleteFunc(slices.Clone(who), func(ext string) bool {
				k, _ := s.liveOf(ext)
				return !d.owner[k].none() || d.alone(k) || s.seenContact(k)
			})
			if len(who) > 1 {
				// The same fields as well as the same identity single one
				// out: a rename changes the external_id and nothing else.
				if same := slices.DeleteFunc(slices.Clone(who), func(ext string) bool {
					k, _ := s.liveOf(ext)
					return !d.sameFields(i, k)
				}); len(same) == 1 {
					who = same
				}
			}
			if len(who) > 1 {
				d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
					"contact %s carries external_id %s, whose record is gone, and holds identities of %d CRM records without a contact (%s): not taken over, since whose it is would be a guess",
					id, carried, len(who), strings.Join(who, ", ")))
				continue
			}
			if len(who) == 0 {
				continue
			}
		}
		if len(who) == 1 {
			d.claims[i] = who[0]
			if d.claimer == nil {
				d.claimer = make([]bool, len(s.live))
			}
			k, _ := s.liveOf(who[0])
			d.claimer[k] = true
			continue
		}
		d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
			"contact %s shares identities with %d CRM records (%s): left alone",
			id, len(who), strings.Join(who, ", ")))
	}
}

func (d *differ) claimedBy(k liveRec, want *Desired) []slot {
	if d.claimer == nil || !d.claimer[k] {
		return nil
	}
	var out []slot
	for _, id := range want.Identities {
		for _, i := range d.poolWith(id) {
			if d.claims[i] == want.ExternalID && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}

// strays are the pool contacts live record k takes. A contact left
// behind by a record that is gone (renamed) is only ever taken over whole by a record without a contact of its
// own, and only one such: merging it into another contact would join two
// people's histories on a guess.
func (d *differ) strays(k liveRec, want *Desired, hasContact bool) []slot {
	claimed := d.claimedBy(k, want)
	var unlinked, owned []slot
	for _, i := range claimed {
		// A contact that delete_policy unlink frees is unlinked this run:
		// it is taken as one.
		if _, ext := d.idx.contacts.ids(i); ext == "" || d.opts.DeletePolicy == DeletePolicyUnlink {
			unlinked = append(unlinked, i)
		} else {
			owned = append(owned, i)
		}
	}
	switch {
	case len(owned) == 0:
		return unlinked
	case hasContact:
		return unlinked // the record has its contact: the others are removed
	case len(owned) > 1:
		if same := slices.DeleteFunc(slices.Clone(owned), func(i slot) bool { return !d.sameFields(i, k) }); len(same) == 1 {
			return append(same, unlinked...)
		}
		// Which one is the record's would be a guess: none is taken.
		d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
			"%s: %d contacts of gone records hold its identities: none is taken over, since which is its own would be a guess",
			want.ExternalID, len(owned)))
		return unlinked
	}
	// The renamed record's contact, and what shares its identity with it.
	return append(owned, unlinked...)
}

func (d *differ) reconcile(k liveRec) {
	s := d.idx
	if d.alone(k) || s.held[k] == heldSkip {
		return
	}
	var one [1]contactRef
	group := one[:0]
	if first, ok := d.owner[k].get(); ok {
		group = append(group, heldRef(first))
		group = heldRefs(group, d.extra[k])
	}
	if s.seenContact(k) && len(group) == 0 && (d.claimer == nil || !d.claimer[k]) {
		d.plan.Unchanged++ // listed, linked, in sync: the common case
		return
	}
	w := s.want(k)
	want := &w
	strays := d.strays(k, want, len(group) > 0 || s.seenContact(k))
	for _, i := range strays {
		d.taken[i] = true
	}
	if s.seenContact(k) {
		if s.held[k] == heldSeen {
			// A duplicate or a stray is to be merged into a contact held
			// only as seen: the caller reads it in full and diffs again.
			d.plan.Fetch = append(d.plan.Fetch, s.linked(k))
			return
		}
		group = append(group, mirrorRef(k))
	}
	if len(group) == 0 && len(strays) == 0 {
		op := d.create(*want)
		op.Linked = s.linked(k)
		d.plan.Operations = append(d.plan.Operations, op)
		return
	}

	linked, fresh := s.linked(k), s.linkFresh[k]
	rekey := d.rekeyed(strays)
	var dest contactRef
	var sources []contactRef
	adopt := len(group) == 0
	switch {
	case adopt:
		cands := heldRefs(make([]contactRef, 0, len(strays)), strays)
		dest = d.destination(cands, rekey)
		sources = slices.DeleteFunc(cands, func(c contactRef) bool { return c == dest })
	case len(group) == 1 && len(strays) == 0:
		dest = group[0] // one contact, nothing to merge
	default:
		dest = d.destination(group, linked)
		sources = heldRefs(without(group, dest), strays)
	}

	state := d.contact(dest)
	for _, src := range sources {
		source := d.contact(src)
		rule, why := RuleSameExternalID, fmt.Sprintf("contact %s also carries external_id %s", source.ID, want.ExternalID)
		switch {
		case source.ExternalID == "":
			rule, why = RuleSharedIdentity, fmt.Sprintf("contact %s has no external_id and shares an identity with %s", source.ID, want.ExternalID)
		case source.ExternalID != want.ExternalID:
			rule, why = RuleSharedIdentity, fmt.Sprintf("contact %s, which delete_policy unlink frees from %s, shares an identity with %s", source.ID, source.ExternalID, want.ExternalID)
		}
		d.plan.Operations = append(d.plan.Operations, Operation{
			Kind: OpMerge, ExternalID: want.ExternalID, ContactID: state.ID, SourceContactID: source.ID,
			Rule: rule, Reason: why + "; merged into " + d.destinationWhy(state.ID, linked, rekey, adopt),
			Hash: want.Hash, Before: []sinch.Contact{state, source}, Retires: d.retires(source.ID),
		})
		state = sinch.Merged(state, source)
	}

	// An adopted contact, a renamed record's contact or a linked contact
	// whose external_id was changed in Sinch carries another external_id
	// (or none); the patch puts the record's in place.
	rule, why := d.patchRule(state, want, linked, adopt)
	if op, ok := patchOperation(state, want, rule, why); ok {
		if adopt {
			op.Retires = d.retires(state.ID)
			// Whose the contact is rests on every record holding its
			// identities: kept, for the journal and for a full run's
			// check of records changed since it read them.
			op.Before = []sinch.Contact{state}
		}
		d.plan.Operations = append(d.plan.Operations, op)
		return
	}
	if len(sources) == 0 {
		d.plan.Unchanged++
		if linked != state.ID || !fresh {
			d.plan.Links = append(d.plan.Links, Link{ExternalID: want.ExternalID, ContactID: state.ID, ContentHash: want.Hash})
		}
	}
}

// patchOperation is the patch that makes state what want asks for, if it
// differs. A contact carrying another external_id (or none) gets want's:
// an adopted contact, a renamed record's old one, or a linked contact whose
// external_id was changed in Sinch.
func patchOperation(state sinch.Contact, want *Desired, rule, why string) (Operation, bool) {
	body, mask, changes := patchFor(state, *want, state.ExternalID != want.ExternalID)
	if len(mask) == 0 {
		return Operation{}, false
	}
	// A copy, not &body: the body's address would move it to the heap on
	// every call, and early patches check every listed linked contact, most
	// of which are in sync.
	sent := new(sinch.Contact)
	*sent = body
	return Operation{
		Kind: OpPatch, ExternalID: want.ExternalID, ContactID: state.ID, UpdateMask: mask,
		Rule: rule, Reason: why, Changes: changes, Contact: sent, Hash: want.Hash,
	}, true
}

// patchRule says why the contact that serves a record is patched.
func (d *differ) patchRule(state sinch.Contact, want *Desired, linked string, adopt bool) (rule, why string) {
	rule, why = RuleDrift, "the contact differs from the CRM record"
	switch {
	case adopt && state.ExternalID == "":
		rule = RuleAdopt
		why = fmt.Sprintf("adopts contact %s, which has no external_id and holds the record's identity", state.ID)
	case adopt && d.opts.DeletePolicy == DeletePolicyUnlink:
		rule = RuleAdopt
		why = fmt.Sprintf("adopts contact %s, which delete_policy unlink frees from %s, since it holds the record's identity", state.ID, state.ExternalID)
	case adopt:
		rule = RuleRekey
		why = fmt.Sprintf("re-keys contact %s from %s, whose record is gone, since it holds the record's identity", state.ID, state.ExternalID)
	case state.ExternalID != want.ExternalID && state.ID == linked:
		rule = RuleRestore
		why = fmt.Sprintf("contact %s is linked to this record, but its external_id was changed to %q in Sinch", state.ID, state.ExternalID)
	}
	return rule, why
}

// sameFields reports whether contact i is what live record k asks for,
// its external_id apart.
func (d *differ) sameFields(i slot, k liveRec) bool {
	want := d.idx.want(k)
	_, mask, _ := patchFor(d.idx.contacts.contact(i), want, false)
	return len(mask) == 0
}

// rekeyed is the id of the contact a gone record left among strays, which
// the renamed record takes over whole; "" when there is none.
func (d *differ) rekeyed(strays []slot) string {
	for _, i := range strays {
		if id, ext := d.idx.contacts.ids(i); ext != "" && d.opts.DeletePolicy != DeletePolicyUnlink {
			return id
		}
	}
	return ""
}

// destination picks the contact that survives a merge: the linked one, else
// the one holding the most identities, else the oldest. Sinch ids are ULIDs,
// which sort by creation time, so the oldest is also the smallest id.
func (d *differ) destination(cands []contactRef, linkedID string) contactRef {
	for _, c := range cands {
		if linkedID != "" && d.id(c) == linkedID {
			return c
		}
	}
	return slices.MinFunc(cands, func(a, b contactRef) int {
		ca, cb := d.contact(a), d.contact(b)
		return cmp.Or(
			cmp.Compare(len(cb.ChannelIdentities), len(ca.ChannelIdentities)),
			strings.Compare(ca.ID, cb.ID),
		)
	})
}

func (d *differ) destinationWhy(id, linkedID, rekeyID string, adopt bool) string {
	switch {
	case linkedID != "" && id == linkedID:
		return id + " (the linked contact)"
	case adopt && id == rekeyID:
		return id + " (the contact of the renamed record)"
	case adopt:
		return id + " (the adopted contact: most identities, then oldest)"
	default:
		return id + " (most identities, then oldest)"
	}
}

func (d *differ) create(want Desired) Operation {
	body := createBody(&want, d.opts)
	return Operation{
		Kind: OpCreate, ExternalID: want.ExternalID, Rule: RuleMissing,
		Reason:  "no Sinch contact carries this external_id",
		Contact: &body, Hash: want.Hash,
	}
}

// createBody is the contact a create sends for want.
func createBody(want *Desired, opts Options) sinch.Contact {
	body := sinch.Contact{
		ExternalID:        want.ExternalID,
		ChannelIdentities: slices.Clone(want.Identities),
		ChannelPriority:   want.ChannelPriority,
	}
	body.DisplayName, body.Email, body.Language, body.Metadata = createFields(want, opts)
	return body
}

// createFields are the fields a create of want sends, its lists apart.
func createFields(want *Desired, opts Options) (name, email, language, metadata string) {
	language = opts.DefaultLanguage
	if want.Language != nil {
		language = *want.Language
	}
	if want.DisplayName != nil {
		name = *want.DisplayName
	}
	if want.Email != nil {
		email = *want.Email
	}
	if want.Metadata != nil {
		metadata = *want.Metadata
	}
	return name, email, language, metadata
}

// storedFields are createFields as Sinch stores them: an empty name as its
// default, an empty language as unspecified.
func storedFields(want *Desired, opts Options) (name, email, language, metadata string) {
	name, email, language, metadata = createFields(want, opts)
	if name == "" {
		name = sinch.DefaultDisplayName
	}
	if language == "" {
		language = sinch.LanguageUnspecified
	}
	return name, email, language, metadata
}

// storedIdentity is an identity of a create as Sinch stores it: a phone
// number without its '+'.
func storedIdentity(id sinch.ChannelIdentity) sinch.ChannelIdentity {
	id.Identity = sinch.NormalizeIdentity(id.Channel, id.Identity)
	return id
}

// mirrorOf is the contact with this id that Sinch holds once it has created
// want's contact and nobody has changed it since: the create's body as
// Sinch stores it (see storedFields and storedIdentity; an empty priority
// as none). A listed contact that is exactly this can be rebuilt rather
// than kept.
func mirrorOf(want *Desired, id string, opts Options) sinch.Contact {
	c := sinch.Contact{ID: id, ExternalID: want.ExternalID, ChannelIdentities: make([]sinch.ChannelIdentity, len(want.Identities))}
	c.DisplayName, c.Email, c.Language, c.Metadata = storedFields(want, opts)
	for i, ci := range want.Identities {
		c.ChannelIdentities[i] = storedIdentity(ci)
	}
	if len(want.ChannelPriority) > 0 {
		c.ChannelPriority = want.ChannelPriority
	}
	return c
}

// isMirror is SameContact(c, mirrorOf(want, c.ID, opts)) without building
// the mirror: it runs for every linked contact a full run lists.
func isMirror(c sinch.Contact, want *Desired, opts Options) bool {
	name, email, language, metadata := storedFields(want, opts)
	if c.ExternalID != want.ExternalID || c.DisplayName != name || c.Email != email || c.Language != language ||
		c.Metadata != metadata || !slices.Equal(c.ChannelPriority, want.ChannelPriority) ||
		len(c.ChannelIdentities) != len(want.Identities) {
		return false
	}
	for i, id := range want.Identities {
		if c.ChannelIdentities[i] != storedIdentity(id) {
			return false
		}
	}
	return true
}

// SameContact compares two contacts as Sinch shows them, and as the index
// packs them: every field, identities in order; empty and missing lists are
// the same thing.
func SameContact(a, b sinch.Contact) bool {
	return a.ID == b.ID && a.ExternalID == b.ExternalID && a.DisplayName == b.DisplayName && a.Email == b.Email &&
		a.Language == b.Language && a.Metadata == b.Metadata &&
		slices.Equal(a.ChannelIdentities, b.ChannelIdentities) && slices.Equal(a.ChannelPriority, b.ChannelPriority)
}

// remove plans what happens to the owned contacts whose record is deleted
// or gone and that no record took over, under the delete policy and the
// guard, which withholds a run's removals when there are more than an
// operator would expect: that usually means a broken CRM view rather than
// real deletions. An incremental run cannot tell a vanished row from an
// unread one, so only tombstones count there; an empty source removes
// nothing.
func (d *differ) remove() {
	s := d.idx
	if s.complete && s.recs.len() == 0 { // the source returned no rows
		if s.contacts.len()+s.seenN > 0 {
			d.plan.Notes = append(d.plan.Notes, "the CRM source returned no rows: nothing is deleted")
		}
		return
	}
	if d.opts.DeletePolicy == DeletePolicyIgnore {
		return
	}
	var removals []slot
	for _, i := range d.candidates {
		if !d.taken[i] {
			removals = append(removals, i)
		}
	}
	if len(removals) > 0 && !d.opts.AllowMassDelete {
		owned := s.seenN
		for i := range s.contacts.slots() {
			if _, ext := s.contacts.ids(i); d.opts.Owns(ext) {
				owned++
			}
		}
		// A partial run sees only the contacts of its scope; the
		// project's links stand for the rest.
		if !s.complete {
			owned = max(owned, s.links)
		}
		switch n := len(removals); {
		case n > d.opts.MaxDeletes:
			d.plan.DeleteGuard = fmt.Sprintf("%d deletes exceed sync.max_deletes (%d)", n, d.opts.MaxDeletes)
		case float64(n) > d.opts.MaxDeleteFraction*float64(owned):
			d.plan.DeleteGuard = fmt.Sprintf("%d deletes are %.1f%% of the %d owned contacts, over sync.max_delete_fraction (%.1f%%)",
				n, 100*float64(n)/float64(owned), owned, 100*d.opts.MaxDeleteFraction)
		}
		if d.plan.DeleteGuard != "" {
			d.plan.DeleteGuard += "; nothing is deleted: check the CRM source, then run again with --allow-mass-delete"
		}
	}
	for _, i := range removals {
		id, carried := s.contacts.ids(i)
		ext := carried
		if _, ok := d.leftBehind[i]; ok {
			// Removed as the contact of the gone record it is linked to,
			// whatever a hand edit made it carry: that record's link goes.
			ext = s.leftBehind[id]
		}
		rule, why := RuleTombstone, "the CRM record is deleted (deleted_at is set)"
		if s.recordState(ext) != stateTombstone {
			rule, why = RuleGone, fmt.Sprintf("no record with this external_id in %s", cmp.Or(s.source.String(), "the CRM source"))
		}
		if d.opts.DeletePolicy == DeletePolicyUnlink {
			d.plan.Operations = append(d.plan.Operations, Operation{
				Kind: OpPatch, ExternalID: ext, ContactID: id, UpdateMask: []string{sinch.FieldExternalID},
				Rule: RuleUnlink, Reason: why + "; delete_policy unlink clears its external_id",
				Changes: []Change{{Field: sinch.FieldExternalID, Old: carried, New: ""}},
				Contact: &sinch.Contact{},
			})
			continue
		}
		d.plan.Operations = append(d.plan.Operations, Operation{
			Kind: OpDelete, ExternalID: ext, ContactID: id, Rule: rule, Reason: why,
			Before: []sinch.Contact{s.contacts.contact(i)},
		})
	}
}

func without(refs []contactRef, drop contactRef) []contactRef {
	out := make([]contactRef, 0, len(refs))
	for _, c := range refs {
		if c != drop {
			out = append(out, c)
		}
	}
	return out
}

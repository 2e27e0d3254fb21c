package sync

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/sinch"
)

// Snapshot is what a run read from both sides.
type Snapshot struct {
	Records []crm.Record
	// Unreadable are source rows the store could not even read; they are
	// rejected, and their contacts are kept.
	Unreadable []Rejection
	Contacts   []sinch.Contact
	// Links are the matches stored by earlier runs, by external_id.
	Links map[string]crm.Link
	// Complete says Records is the whole CRM source and Contacts the whole
	// Sinch project, so that a record missing from the source counts as
	// deleted. An incremental run only has the rows that changed.
	Complete bool
	// Source names the CRM relation, for the reasons of deletes.
	Source string

	// prep is the records normalised and indexed, when a full run did so
	// as it read them; nil otherwise.
	prep *prepared
	// packed holds the contacts instead of Contacts when a full run packed
	// them as they were listed.
	packed *packedContacts
}

// Diff computes the operations that align Sinch with the CRM. It is a pure
// function of its inputs: it reads nothing and sends nothing.
func Diff(s Snapshot, opts Options) Plan {
	d := differ{snap: s, opts: opts}
	d.normalize()
	d.findRemovals()
	d.guard()
	d.index()
	d.claim()
	for k := range d.live {
		d.reconcile(k)
	}
	d.removeOrphans()
	return d.plan
}

// A diff of a million records against a million contacts must stay within
// a few hundred bytes and a couple of microseconds a pair, so its indexes
// are compact: one map from external_id to the record's state, a slice of
// record positions, and per live record the contact carrying its
// external_id; maps keyed by contact are kept for the few contacts that
// need them (unlinked ones, duplicates).

// recordState values below zero; zero and above are positions in live.
const (
	stateKeep      int32 = -1 // rejected, duplicated or unreadable rows: never delete their contacts
	stateTombstone int32 = -2 // rows with deleted_at set
	stateNone      int32 = -3 // no record (contactState only)
)

type differ struct {
	snap Snapshot
	opts Options
	plan Plan

	live       []int32          // records valid and not deleted, as indexes into snap.Records, sorted by external_id
	state      map[string]int32 // external_id -> position in live, or stateKeep, stateTombstone (shared, read only)
	unreadable map[string]bool  // rows the store could not read, whose contacts are kept
	byLive     []int32          // position in live -> the first contact carrying its external_id, -1 none
	extra      map[int32][]int  // position in live -> further contacts carrying its external_id
	unlinked   map[string][]int // unlinked contact indexes by identity key
	claims     map[int]string   // unlinked contact index -> the one record that may take it
	taken      map[int]bool     // unlinked contacts adopted or merged by a record
	removals   []int            // owned contacts whose record is deleted or gone
	released   map[int]bool     // removals that delete_policy unlink frees for adoption
	key        []byte           // scratch for identity keys
	// byContact is recordState of each contact's external_id.
	byContact []int32
	// claimer marks the live records that some unlinked contact's claim
	// names, the only ones that can have strays.
	claimer []bool
}

// want is the k-th live record.
func (d *differ) want(k int) Desired { return d.snap.prep.want(k) }

func (d *differ) contactCount() int {
	if d.snap.packed != nil {
		return d.snap.packed.len()
	}
	return len(d.snap.Contacts)
}

// contact is the i-th contact.
func (d *differ) contact(i int) sinch.Contact {
	if d.snap.packed != nil {
		return d.snap.packed.contact(i)
	}
	return d.snap.Contacts[i]
}

// contactIDs are the id and external_id of the i-th contact.
func (d *differ) contactIDs(i int) (id, externalID string) {
	if d.snap.packed != nil {
		return d.snap.packed.ids(i)
	}
	c := &d.snap.Contacts[i]
	return c.ID, c.ExternalID
}

// contactState is the state of the record whose external_id the i-th
// contact carries, looked up once per contact.
func (d *differ) contactState(i int) int32 {
	if d.byContact == nil {
		d.byContact = make([]int32, d.contactCount())
		for j := range d.byContact {
			d.byContact[j] = stateNone
			if _, ext := d.contactIDs(j); ext != "" {
				d.byContact[j] = d.recordState(ext)
			}
		}
	}
	return d.byContact[i]
}

// recordState is the state of the record with this external_id.
func (d *differ) recordState(ext string) int32 {
	if d.unreadable[ext] {
		return stateKeep
	}
	if s, ok := d.state[ext]; ok {
		return s
	}
	return stateNone
}

func (d *differ) normalize() {
	p := d.snap.prep
	if p == nil || (d.snap.Records != nil && p.recs.len() != len(d.snap.Records)) {
		p = newPrepared()
		p.add(d.snap.Records, d.opts)
		p.index()
		d.snap.prep = p
	}
	d.live, d.state = p.live, p.state
	for _, rej := range d.snap.Unreadable {
		if s, ok := d.state[rej.ExternalID]; !ok || s == stateTombstone {
			if d.unreadable == nil {
				d.unreadable = make(map[string]bool)
			}
			d.unreadable[rej.ExternalID] = true
		}
		d.plan.Rejected = append(d.plan.Rejected, rej)
	}
	d.plan.Rejected = append(d.plan.Rejected, p.rejected...)
	slices.SortFunc(d.plan.Rejected, func(a, b Rejection) int { return strings.Compare(a.ExternalID, b.ExternalID) })
}

func (d *differ) index() {
	d.byLive = make([]int32, len(d.live))
	for k := range d.byLive {
		d.byLive[k] = -1
	}
	d.unlinked = make(map[string][]int)
	for i := range d.contactCount() {
		if _, ext := d.contactIDs(i); ext != "" && !d.released[i] {
			if k := d.contactState(i); k >= 0 {
				if d.byLive[k] < 0 {
					d.byLive[k] = int32(i)
				} else {
					if d.extra == nil {
						d.extra = make(map[int32][]int)
					}
					d.extra[k] = append(d.extra[k], i)
				}
			}
			continue
		}
		for _, id := range d.contact(i).ChannelIdentities {
			key := identityKey(id)
			if n := len(d.unlinked[key]); n == 0 || d.unlinked[key][n-1] != i {
				d.unlinked[key] = append(d.unlinked[key], i)
			}
		}
	}
}

// unlinkedWith returns the unlinked contacts holding the identity.
func (d *differ) unlinkedWith(id sinch.ChannelIdentity) []int {
	if len(d.unlinked) == 0 {
		return nil
	}
	d.key = appendIdentityKey(d.key[:0], id)
	return d.unlinked[string(d.key)]
}

// claim decides which unlinked contacts a record may adopt or merge. A
// contact that holds identities of two records belongs to neither: merging it
// would join two people into one.
func (d *differ) claim() {
	claimants := make(map[int][]string)
	if len(d.unlinked) > 0 {
		for k, rec := range d.live {
			ext := d.snap.prep.recs.externalID(int(rec))
			d.snap.prep.identities(k, func(id sinch.ChannelIdentity) {
				for _, i := range d.unlinkedWith(id) {
					if c := claimants[i]; len(c) == 0 || c[len(c)-1] != ext {
						claimants[i] = append(c, ext)
					}
				}
			})
		}
	}
	d.claims = make(map[int]string, len(claimants))
	d.taken = make(map[int]bool)
	for _, i := range slices.Sorted(maps.Keys(claimants)) {
		who := claimants[i]
		if len(who) == 1 {
			d.claims[i] = who[0]
			if d.claimer == nil {
				d.claimer = make([]bool, len(d.live))
			}
			d.claimer[d.state[who[0]]] = true
			continue
		}
		d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
			"contact %s has no external_id and shares identities with %d CRM records (%s): left alone",
			d.contact(i).ID, len(who), strings.Join(who, ", ")))
	}
}

func (d *differ) claimedBy(k int, externalID string, want *Desired) []int {
	if d.claimer == nil || !d.claimer[k] {
		return nil
	}
	var out []int
	for _, id := range want.Identities {
		for _, i := range d.unlinkedWith(id) {
			if d.claims[i] == externalID && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}

func (d *differ) reconcile(k int) {
	w := d.want(k)
	want := &w
	var one [1]int
	group := one[:0]
	if first := d.byLive[k]; first >= 0 {
		group = append(group, int(first))
		group = append(group, d.extra[int32(k)]...)
	}
	strays := d.claimedBy(k, want.ExternalID, want)

	if len(group) == 0 && len(strays) == 0 {
		d.plan.Operations = append(d.plan.Operations, d.create(*want))
		return
	}

	linked, fresh := d.snap.prep.link(k, d.snap.Links)
	var dest int
	var sources []int
	adopt := len(group) == 0
	switch {
	case adopt:
		dest = d.destination(strays, "")
		sources = without(strays, dest)
	case len(group) == 1 && len(strays) == 0:
		dest = group[0] // the common case: one contact, nothing to merge
	default:
		dest = d.destination(group, linked)
		sources = append(without(group, dest), strays...)
	}

	for _, i := range strays {
		d.taken[i] = true
	}
	state := d.contact(dest)
	for _, src := range sources {
		source := d.contact(src)
		rule, why := RuleSameExternalID, fmt.Sprintf("contact %s also carries external_id %s", source.ID, want.ExternalID)
		if source.ExternalID != want.ExternalID {
			rule, why = RuleSharedIdentity, fmt.Sprintf("contact %s has no external_id and shares an identity with %s", source.ID, want.ExternalID)
		}
		d.plan.Operations = append(d.plan.Operations, Operation{
			Kind: OpMerge, ExternalID: want.ExternalID, ContactID: state.ID, SourceContactID: source.ID,
			Rule: rule, Reason: why + "; merged into " + d.destinationWhy(dest, linked, adopt),
			Hash: want.Hash,
		})
		state = sinch.Merged(state, source)
	}

	// An adopted contact released by unlink still carries its old
	// external_id; the adoption patch replaces it.
	body, mask, changes := patchFor(state, *want, adopt || state.ExternalID != want.ExternalID)
	if len(mask) > 0 {
		body := body // allocated only for a patch that is made
		rule, why := RuleDrift, "the contact differs from the CRM record"
		if adopt {
			rule = RuleAdopt
			why = fmt.Sprintf("adopts contact %s, which has no external_id and holds the record's identity", state.ID)
		}
		d.plan.Operations = append(d.plan.Operations, Operation{
			Kind: OpPatch, ExternalID: want.ExternalID, ContactID: state.ID, UpdateMask: mask,
			Rule: rule, Reason: why, Changes: changes, Contact: &body, Hash: want.Hash,
		})
		return
	}
	if len(sources) == 0 {
		d.plan.Unchanged++
		if linked != state.ID || !fresh {
			d.plan.Links = append(d.plan.Links, Link{ExternalID: want.ExternalID, ContactID: state.ID, Hash: want.Hash})
		}
	}
}

// destination picks the contact that survives a merge: the linked one, else
// the one holding the most identities, else the oldest. Sinch ids are ULIDs,
// which sort by creation time, so the oldest is also the smallest id.
func (d *differ) destination(cands []int, linkedID string) int {
	for _, i := range cands {
		if id, _ := d.contactIDs(i); id == linkedID && linkedID != "" {
			return i
		}
	}
	return slices.MinFunc(cands, func(a, b int) int {
		ca, cb := d.contact(a), d.contact(b)
		return cmp.Or(
			cmp.Compare(len(cb.ChannelIdentities), len(ca.ChannelIdentities)),
			strings.Compare(ca.ID, cb.ID),
		)
	})
}

func (d *differ) destinationWhy(dest int, linkedID string, adopt bool) string {
	c := d.contact(dest)
	switch {
	case linkedID != "" && c.ID == linkedID:
		return c.ID + " (the linked contact)"
	case adopt:
		return c.ID + " (the adopted contact: most identities, then oldest)"
	default:
		return c.ID + " (most identities, then oldest)"
	}
}

func (d *differ) create(want Desired) Operation {
	body := sinch.Contact{
		ExternalID:        want.ExternalID,
		ChannelIdentities: slices.Clone(want.Identities),
		ChannelPriority:   want.ChannelPriority,
		Language:          d.opts.DefaultLanguage,
	}
	if want.Language != nil {
		body.Language = *want.Language
	}
	if want.DisplayName != nil {
		body.DisplayName = *want.DisplayName
	}
	if want.Email != nil {
		body.Email = *want.Email
	}
	if want.Metadata != nil {
		body.Metadata = *want.Metadata
	}
	return Operation{
		Kind: OpCreate, ExternalID: want.ExternalID, Rule: RuleMissing,
		Reason:  "no Sinch contact carries this external_id",
		Contact: &body, Hash: want.Hash,
	}
}

// findRemovals lists the owned contacts whose CRM record is deleted or
// gone. An incremental run cannot tell a vanished row from an unread one,
// so only tombstones count there; an empty source removes nothing.
func (d *differ) findRemovals() {
	d.released = make(map[int]bool)
	if d.snap.Complete && d.snap.prep.recs.len() == 0 { // the source returned no rows
		if d.contactCount() > 0 {
			d.plan.Notes = append(d.plan.Notes, "the CRM source returned no rows: nothing is deleted")
		}
		return
	}
	if d.opts.DeletePolicy == DeletePolicyIgnore {
		return
	}
	for i := range d.contactCount() {
		_, ext := d.contactIDs(i)
		if !d.opts.owns(ext) {
			continue
		}
		if st := d.contactState(i); st >= 0 || st == stateKeep || !(d.snap.Complete || st == stateTombstone) {
			continue
		}
		d.removals = append(d.removals, i)
	}
}

// guard withholds a run's deletes when there are more than an operator would
// expect, which usually means a broken CRM view rather than real deletions.
// Contacts that delete_policy unlink frees may be adopted by other records,
// but only when the guard lets the unlinks through.
func (d *differ) guard() {
	removes := len(d.removals)
	if removes > 0 && !d.opts.AllowMassDelete {
		owned := 0
		for i := range d.contactCount() {
			if _, ext := d.contactIDs(i); d.opts.owns(ext) {
				owned++
			}
		}
		// An incremental run sees only the contacts it looked up; the
		// links stand for the rest of the project.
		if !d.snap.Complete {
			owned = max(owned, len(d.snap.Links))
		}
		switch {
		case removes > d.opts.MaxDeletes:
			d.plan.DeleteGuard = fmt.Sprintf("%d deletes exceed sync.max_deletes (%d)", removes, d.opts.MaxDeletes)
		case float64(removes) > d.opts.MaxDeleteFraction*float64(owned):
			d.plan.DeleteGuard = fmt.Sprintf("%d deletes are %.1f%% of the %d owned contacts, over sync.max_delete_fraction (%.1f%%)",
				removes, 100*float64(removes)/float64(owned), owned, 100*d.opts.MaxDeleteFraction)
		}
		if d.plan.DeleteGuard != "" {
			d.plan.DeleteGuard += "; nothing is deleted: check the CRM source, then run again with --allow-mass-delete"
			return
		}
	}
	if d.opts.DeletePolicy == DeletePolicyUnlink {
		for _, i := range d.removals {
			d.released[i] = true
		}
	}
}

func (d *differ) removeOrphans() {
	for _, i := range d.removals {
		if d.taken[i] {
			continue // adopted or merged by another record
		}
		id, ext := d.contactIDs(i)
		rule, why := RuleTombstone, "the CRM record is deleted (deleted_at is set)"
		if d.recordState(ext) != stateTombstone {
			rule, why = RuleGone, fmt.Sprintf("no record with this external_id in %s", cmp.Or(d.snap.Source, "the CRM source"))
		}
		if d.opts.DeletePolicy == DeletePolicyUnlink {
			d.plan.Operations = append(d.plan.Operations, Operation{
				Kind: OpPatch, ExternalID: ext, ContactID: id, UpdateMask: []string{sinch.FieldExternalID},
				Rule: RuleUnlink, Reason: why + "; delete_policy unlink clears its external_id",
				Changes: []Change{{Field: sinch.FieldExternalID, Old: ext, New: ""}},
				Contact: &sinch.Contact{},
			})
			continue
		}
		d.plan.Operations = append(d.plan.Operations, Operation{
			Kind: OpDelete, ExternalID: ext, ContactID: id, Rule: rule, Reason: why,
		})
	}
}

func without(idx []int, drop int) []int {
	out := make([]int, 0, len(idx))
	for _, i := range idx {
		if i != drop {
			out = append(out, i)
		}
	}
	return out
}

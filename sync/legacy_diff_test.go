package sync

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/syncd/syncd/sinch"
)

// legacyDiff is Diff (and patchFor) as first written, before the diff was
// made fast and compact, kept as the reference TestDiffMatchesLegacy
// compares the real one with. A deliberate change to what the diff plans
// must be made here too.
func legacyDiff(s Snapshot, opts Options) Plan {
	d := legacyDiffer{snap: s, opts: opts}
	d.normalize()
	d.findRemovals()
	d.guard()
	d.index()
	d.claim()
	for _, want := range d.live {
		d.reconcile(want)
	}
	d.removeOrphans()
	return d.plan
}

type legacyDiffer struct {
	snap Snapshot
	opts Options
	plan Plan

	live       []Desired        // valid, not deleted, sorted by external_id
	isLive     map[string]bool  // external_id has a live, valid record
	keep       map[string]bool  // rejected or duplicated rows: never delete their contacts
	tombstoned map[string]bool  // rows with deleted_at set
	byExternal map[string][]int // contact indexes by external_id
	unlinked   map[string][]int // unlinked contact indexes by identity key
	claims     map[int]string   // unlinked contact index -> the one record that may take it
	taken      map[int]bool     // unlinked contacts adopted or merged by a record
	removals   []int            // owned contacts whose record is deleted or gone
	released   map[int]bool     // removals that delete_policy unlink frees for adoption
}

func (d *legacyDiffer) normalize() {
	d.isLive = make(map[string]bool, len(d.snap.Records))
	d.keep = make(map[string]bool)
	d.tombstoned = make(map[string]bool)

	for _, rej := range d.snap.Unreadable {
		d.keep[rej.ExternalID] = true
		d.plan.Rejected = append(d.plan.Rejected, rej)
	}
	seen := make(map[string]int, len(d.snap.Records))
	for _, rec := range d.snap.Records {
		seen[rec.ExternalID]++
	}
	for _, rec := range d.snap.Records {
		if n := seen[rec.ExternalID]; n != 1 {
			d.keep[rec.ExternalID] = true
			if n > 1 {
				d.plan.Rejected = append(d.plan.Rejected, Rejection{
					ExternalID: rec.ExternalID, Column: "external_id",
					Reason: fmt.Sprintf("appears %d times in the source; fix the CRM so that it is unique", n),
				})
				seen[rec.ExternalID] = 0 // reported once, skip the other copies
			}
			continue
		}
		want, rej := Normalize(rec, d.opts)
		if rej != nil {
			d.keep[rec.ExternalID] = true
			d.plan.Rejected = append(d.plan.Rejected, *rej)
			continue
		}
		if want.Deleted {
			d.tombstoned[want.ExternalID] = true
			continue
		}
		d.isLive[want.ExternalID] = true
		d.live = append(d.live, want)
	}
	slices.SortFunc(d.live, func(a, b Desired) int { return strings.Compare(a.ExternalID, b.ExternalID) })
	slices.SortFunc(d.plan.Rejected, func(a, b Rejection) int { return strings.Compare(a.ExternalID, b.ExternalID) })
}

func (d *legacyDiffer) index() {
	d.byExternal = make(map[string][]int, len(d.snap.Contacts))
	d.unlinked = make(map[string][]int)
	for i, c := range d.snap.Contacts {
		if c.ExternalID != "" && !d.released[i] {
			d.byExternal[c.ExternalID] = append(d.byExternal[c.ExternalID], i)
			continue
		}
		for _, id := range c.ChannelIdentities {
			key := identityKey(id)
			if n := len(d.unlinked[key]); n == 0 || d.unlinked[key][n-1] != i {
				d.unlinked[key] = append(d.unlinked[key], i)
			}
		}
	}
}

// claim decides which unlinked contacts a record may adopt or merge. A
// contact that holds identities of two records belongs to neither: merging it
// would join two people into one.
func (d *legacyDiffer) claim() {
	claimants := make(map[int][]string)
	for _, want := range d.live {
		for _, id := range want.Identities {
			for _, i := range d.unlinked[identityKey(id)] {
				if c := claimants[i]; len(c) == 0 || c[len(c)-1] != want.ExternalID {
					claimants[i] = append(c, want.ExternalID)
				}
			}
		}
	}
	d.claims = make(map[int]string, len(claimants))
	d.taken = make(map[int]bool)
	for _, i := range slices.Sorted(maps.Keys(claimants)) {
		who := claimants[i]
		if len(who) == 1 {
			d.claims[i] = who[0]
			continue
		}
		d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(
			"contact %s has no external_id and shares identities with %d CRM records (%s): left alone",
			d.snap.Contacts[i].ID, len(who), strings.Join(who, ", ")))
	}
}

func (d *legacyDiffer) claimedBy(externalID string, want Desired) []int {
	var out []int
	for _, id := range want.Identities {
		for _, i := range d.unlinked[identityKey(id)] {
			if d.claims[i] == externalID && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}

func (d *legacyDiffer) reconcile(want Desired) {
	group := d.byExternal[want.ExternalID]
	strays := d.claimedBy(want.ExternalID, want)

	if len(group) == 0 && len(strays) == 0 {
		d.plan.Operations = append(d.plan.Operations, d.create(want))
		return
	}

	linked := d.snap.Links[want.ExternalID].ContactID
	var dest int
	var sources []int
	adopt := len(group) == 0
	if adopt {
		dest = d.destination(strays, "")
		sources = legacyWithout(strays, dest)
	} else {
		dest = d.destination(group, linked)
		sources = append(legacyWithout(group, dest), strays...)
	}

	for _, i := range strays {
		d.taken[i] = true
	}
	state := d.snap.Contacts[dest]
	for _, src := range sources {
		source := d.snap.Contacts[src]
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
	body, mask, changes := legacyPatchFor(state, want, adopt || state.ExternalID != want.ExternalID)
	if len(mask) > 0 {
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
		if link := d.snap.Links[want.ExternalID]; link.ContactID != state.ID || link.ContentHash != want.Hash {
			d.plan.Links = append(d.plan.Links, Link{ExternalID: want.ExternalID, ContactID: state.ID, Hash: want.Hash})
		}
	}
}

// destination picks the contact that survives a merge: the linked one, else
// the one holding the most identities, else the oldest. Sinch ids are ULIDs,
// which sort by creation time, so the oldest is also the smallest id.
func (d *legacyDiffer) destination(cands []int, linkedID string) int {
	for _, i := range cands {
		if d.snap.Contacts[i].ID == linkedID && linkedID != "" {
			return i
		}
	}
	return slices.MinFunc(cands, func(a, b int) int {
		ca, cb := d.snap.Contacts[a], d.snap.Contacts[b]
		return cmp.Or(
			cmp.Compare(len(cb.ChannelIdentities), len(ca.ChannelIdentities)),
			strings.Compare(ca.ID, cb.ID),
		)
	})
}

func (d *legacyDiffer) destinationWhy(dest int, linkedID string, adopt bool) string {
	c := d.snap.Contacts[dest]
	switch {
	case linkedID != "" && c.ID == linkedID:
		return c.ID + " (the linked contact)"
	case adopt:
		return c.ID + " (the adopted contact: most identities, then oldest)"
	default:
		return c.ID + " (most identities, then oldest)"
	}
}

func (d *legacyDiffer) create(want Desired) Operation {
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
func (d *legacyDiffer) findRemovals() {
	d.released = make(map[int]bool)
	if d.snap.Complete && len(d.snap.Records) == 0 {
		if len(d.snap.Contacts) > 0 {
			d.plan.Notes = append(d.plan.Notes, "the CRM source returned no rows: nothing is deleted")
		}
		return
	}
	if d.opts.DeletePolicy == DeletePolicyIgnore {
		return
	}
	for i, c := range d.snap.Contacts {
		ext := c.ExternalID
		if !d.opts.owns(ext) || d.isLive[ext] || d.keep[ext] || !(d.snap.Complete || d.tombstoned[ext]) {
			continue
		}
		d.removals = append(d.removals, i)
	}
}

// guard withholds a run's deletes when there are more than an operator would
// expect, which usually means a broken CRM view rather than real deletions.
// Contacts that delete_policy unlink frees may be adopted by other records,
// but only when the guard lets the unlinks through.
func (d *legacyDiffer) guard() {
	removes := len(d.removals)
	if removes > 0 && !d.opts.AllowMassDelete {
		owned := 0
		for _, c := range d.snap.Contacts {
			if d.opts.owns(c.ExternalID) {
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

func (d *legacyDiffer) removeOrphans() {
	for _, i := range d.removals {
		if d.taken[i] {
			continue // adopted or merged by another record
		}
		c := d.snap.Contacts[i]
		ext := c.ExternalID
		rule, why := RuleTombstone, "the CRM record is deleted (deleted_at is set)"
		if !d.tombstoned[ext] {
			rule, why = RuleGone, fmt.Sprintf("no record with this external_id in %s", cmp.Or(d.snap.Source, "the CRM source"))
		}
		if d.opts.DeletePolicy == DeletePolicyUnlink {
			d.plan.Operations = append(d.plan.Operations, Operation{
				Kind: OpPatch, ExternalID: ext, ContactID: c.ID, UpdateMask: []string{sinch.FieldExternalID},
				Rule: RuleUnlink, Reason: why + "; delete_policy unlink clears its external_id",
				Changes: []Change{{Field: sinch.FieldExternalID, Old: ext, New: ""}},
				Contact: &sinch.Contact{},
			})
			continue
		}
		d.plan.Operations = append(d.plan.Operations, Operation{
			Kind: OpDelete, ExternalID: ext, ContactID: c.ID, Rule: rule, Reason: why,
		})
	}
}

func legacyWithout(idx []int, drop int) []int {
	out := make([]int, 0, len(idx))
	for _, i := range idx {
		if i != drop {
			out = append(out, i)
		}
	}
	return out
}

// patchFor compares what Sinch holds with what the CRM asks for and returns
// the body and update_mask of the patch that aligns them, naming exactly the
// fields that legacyDiffer. adopt adds the external_id of a contact taken over.
func legacyPatchFor(have sinch.Contact, want Desired, adopt bool) (sinch.Contact, []string, []Change) {
	var body sinch.Contact
	var mask []string
	var changes []Change
	set := func(field, old, new string) {
		mask = append(mask, field)
		changes = append(changes, Change{Field: field, Old: old, New: new})
	}

	// Mask order follows the contact's field order, so that reports and
	// request URLs are stable.
	if ids, ok := legacyIdentitiesFor(have, want); ok {
		body.ChannelIdentities = ids
		set(sinch.FieldChannelIdentities, legacyFormatIdentities(have.ChannelIdentities), legacyFormatIdentities(ids))
	}
	if want.ChannelPriority != nil {
		prio := legacyPriorityFor(have, want)
		if !slices.Equal(prio, have.ChannelPriority) {
			body.ChannelPriority = prio
			set(sinch.FieldChannelPriority, strings.Join(have.ChannelPriority, ","), strings.Join(prio, ","))
		}
	}
	if want.DisplayName != nil && !legacySameDisplayName(have, *want.DisplayName) {
		body.DisplayName = *want.DisplayName
		set(sinch.FieldDisplayName, have.DisplayName, *want.DisplayName)
	}
	if want.Email != nil && canonicalEmail(have.Email) != *want.Email {
		body.Email = *want.Email
		set(sinch.FieldEmail, have.Email, *want.Email)
	}
	if adopt {
		body.ExternalID = want.ExternalID
		set(sinch.FieldExternalID, have.ExternalID, want.ExternalID)
	}
	if want.Language != nil && have.Language != *want.Language {
		body.Language = *want.Language
		set(sinch.FieldLanguage, have.Language, *want.Language)
	}
	if want.Metadata != nil && canonicalMetadata(have.Metadata) != canonicalMetadata(*want.Metadata) {
		body.Metadata = *want.Metadata
		set(sinch.FieldMetadata, have.Metadata, *want.Metadata)
	}
	return body, mask, changes
}

// sameDisplayName treats an empty CRM name as satisfied by the names Sinch
// fills in on its own: its default, and a WhatsApp profile name, which Sinch
// shows again whatever syncd clears.
func legacySameDisplayName(have sinch.Contact, want string) bool {
	if want == have.DisplayName {
		return true
	}
	if want != "" {
		return false
	}
	if have.DisplayName == sinch.DefaultDisplayName {
		return true
	}
	return slices.ContainsFunc(have.ChannelIdentities, func(id sinch.ChannelIdentity) bool { return id.Channel == "WHATSAPP" })
}

// identitiesFor returns the identity list a patch should send, and whether it
// differs from Sinch's. Identities on channels the record does not manage
// (a MESSENGER id Sinch added, say) are kept after the managed ones.
func legacyIdentitiesFor(have sinch.Contact, want Desired) ([]sinch.ChannelIdentity, bool) {
	if len(want.Managed) == 0 {
		return nil, false
	}
	var unmanaged []sinch.ChannelIdentity
	haveKeys := make(map[string]bool, len(have.ChannelIdentities))
	for _, id := range have.ChannelIdentities {
		if slices.Contains(want.Managed, id.Channel) {
			haveKeys[identityKey(id)] = true
		} else {
			unmanaged = append(unmanaged, id)
		}
	}
	same := len(haveKeys) == len(want.Identities)
	for _, id := range want.Identities {
		same = same && haveKeys[identityKey(id)]
	}
	if same {
		return nil, false
	}
	return append(slices.Clone(want.Identities), unmanaged...), true
}

// priorityFor is the CRM's channel order followed by the channels it does not
// manage, in the order Sinch has them.
func legacyPriorityFor(have sinch.Contact, want Desired) []string {
	prio := slices.Clone(want.ChannelPriority)
	for _, ch := range have.ChannelPriority {
		if !slices.Contains(prio, ch) && !slices.Contains(want.Managed, ch) {
			prio = append(prio, ch)
		}
	}
	return prio
}

func legacyFormatIdentities(ids []sinch.ChannelIdentity) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id.Channel + ":" + id.Identity
		if id.AppID != "" {
			parts[i] += "@" + id.AppID
		}
	}
	return strings.Join(parts, ",")
}

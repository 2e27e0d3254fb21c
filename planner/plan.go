package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/syncd/syncd/sinch"
)

// OpKind names what an operation does to Sinch.
type OpKind string

// The kinds, as the journal records them.
const (
	OpCreate OpKind = "create"
	OpPatch  OpKind = "patch"
	OpMerge  OpKind = "merge"
	OpDelete OpKind = "delete"
)

// OpKinds are the kinds of operation.
func OpKinds() []OpKind { return []OpKind{OpCreate, OpPatch, OpMerge, OpDelete} }

// Rules say why an operation exists, for the report and the journal.
const (
	RuleMissing        = "missing"          // no contact carries the external_id
	RuleDrift          = "drift"            // managed fields differ from the CRM
	RuleAdopt          = "adopt"            // an unlinked contact holds the record's identity
	RuleSameExternalID = "same-external-id" // duplicates of one external_id
	RuleSharedIdentity = "shared-identity"  // an unlinked contact shares a managed identity
	RuleTombstone      = "tombstone"        // the CRM row has deleted_at set
	RuleGone           = "gone"             // the CRM row vanished from the source
	RuleUnlink         = "unlink"           // delete_policy unlink: clear external_id
	RuleRekey          = "rekey"            // a renamed record takes over its old contact
	RuleRestore        = "restore"          // a linked contact's external_id was changed in Sinch
)

// Operation is one call a plan makes to Sinch. Contact is the request body
// of a create or patch.
type Operation struct {
	Kind            OpKind         `json:"kind"`
	ExternalID      string         `json:"external_id"`
	ContactID       string         `json:"contact_id,omitempty"`
	SourceContactID string         `json:"source_contact_id,omitempty"`
	UpdateMask      []string       `json:"update_mask,omitempty"`
	Reason          string         `json:"reason"`
	Rule            string         `json:"rule"`
	Changes         []Change       `json:"changes,omitempty"`
	Contact         *sinch.Contact `json:"contact,omitempty"`
	// Hash is the content hash of the CRM record the operation serves,
	// stored with the link once Sinch has confirmed it.
	Hash string `json:"-"`
	// Before are the contacts a merge (destination, then source), a
	// delete or an adoption removes or changes, as the diff saw them. None
	// can be undone from what the contact holds afterwards, so the journal
	// keeps them.
	Before []sinch.Contact `json:"-"`
	// Linked is, for a create, the contact the record's stored link names:
	// the record had a contact, which the run did not find (deleted in
	// Sinch, or missed by a list that shifted), and which is read again
	// before a second one is created.
	Linked string `json:"linked,omitempty"`
	// Retires is the external_id of the gone record whose contact this
	// operation takes over (a rename re-keyed by a full run): its link is
	// dropped once Sinch has confirmed.
	Retires string `json:"retires,omitempty"`
}

// Change is one field an operation sets, with the value Sinch holds now.
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// String is the operation in one line, for logs and tests: "kind
// external_id contact[<-source] [mask] rule".
func (op Operation) String() string {
	var b strings.Builder
	b.WriteString(string(op.Kind) + " " + op.ExternalID)
	if op.ContactID != "" {
		b.WriteString(" " + op.ContactID)
	}
	if op.SourceContactID != "" {
		b.WriteString("<-" + op.SourceContactID)
	}
	if len(op.UpdateMask) > 0 {
		b.WriteString(" [" + strings.Join(op.UpdateMask, ",") + "]")
	}
	b.WriteString(" " + op.Rule)
	return b.String()
}

// Removes reports whether the operation takes a contact away from the CRM's
// mirror, which the mass-delete guard counts.
func (op Operation) Removes() bool {
	return op.Kind == OpDelete || op.Rule == RuleUnlink
}

// Explain is the operation's reason followed by the fields it sets, with
// their values unless redact is set (logs and the journal hold no PII).
func (op Operation) Explain(redact bool) string {
	return op.ExplainSent(op.Sent(), redact)
}

// explain is Explain with what the operation sets (op.Sent) in hand.
func (op Operation) ExplainSent(changes []Change, redact bool) string {
	if len(changes) == 0 {
		return op.Reason
	}
	if op.Kind == OpCreate && len(op.Changes) == 0 {
		return op.Reason + ": sends " + DescribeValues(changes, redact)
	}
	return op.Reason + ": " + DescribeChanges(changes, redact)
}

// Sent is what the operation sets in Sinch: its changes, or for a create,
// which has none to show, every field of the contact it sends.
func (op Operation) Sent() []Change {
	if op.Kind != OpCreate || op.Contact == nil || len(op.Changes) > 0 {
		return op.Changes
	}
	c := op.Contact
	out := make([]Change, 0, 6) // one for each field add is called with below
	add := func(field, v string) {
		if v != "" {
			out = append(out, Change{Field: field, New: v})
		}
	}
	add(sinch.FieldDisplayName, c.DisplayName)
	add(sinch.FieldEmail, c.Email)
	add(sinch.FieldChannelIdentities, sinch.FormatIdentities(c.ChannelIdentities))
	add(sinch.FieldChannelPriority, strings.Join(c.ChannelPriority, ", "))
	add(sinch.FieldLanguage, c.Language)
	add(sinch.FieldMetadata, c.Metadata)
	return out
}

// Link ties a CRM record to the Sinch contact that mirrors it: a match a
// plan makes, and what syncd's state keeps of it. ContentHash is the
// fingerprint of what was last written, so an unchanged record costs no
// call; SyncedAt is when the link was stored.
type Link struct {
	ExternalID  string    `json:"external_id"`
	ContactID   string    `json:"contact_id"`
	ContentHash string    `json:"-"`
	SyncedAt    time.Time `json:"-"`
}

// Plan is what a run would do, as plain data.
type Plan struct {
	Operations []Operation `json:"operations"`
	// Groups are the operations (indexes into Operations) that must run one
	// after another, each in the order given; different groups may run side
	// by side. Diff orders them (Order) so that no run cut short leaves two
	// contacts carrying one external_id.
	Groups    [][]int     `json:"-"`
	Rejected  []Rejection `json:"rejected"`
	Unchanged int         `json:"-"`
	// Links are matches that need no call but are not yet stored.
	Links []Link `json:"-"`
	// DeleteGuard, when set, says why the plan's deletes are withheld.
	DeleteGuard string   `json:"delete_guard,omitempty"`
	Notes       []string `json:"notes,omitempty"`
	// Fetch are contacts the index held only as seen (linked and in
	// sync, but not exactly as syncd would have created them, so not
	// rebuilt: see Index) on which the plan turned out to depend. Such a
	// plan is not to be acted on: add them to the index, read afresh,
	// and diff again.
	Fetch []string `json:"-"`
	// Unlinks are the stored links of records that are gone whose contact
	// no longer stands for them: Sinch holds no such contact, or a live
	// record's link names it too. A full run drops them.
	Unlinks []string `json:"-"`
}

// Summary counts a plan's operations by kind.
type Summary struct {
	Create    int `json:"create"`
	Patch     int `json:"patch"`
	Merge     int `json:"merge"`
	Delete    int `json:"delete"`
	Unchanged int `json:"unchanged"`
	Rejected  int `json:"rejected"`
}

// Summary counts the plan's operations by kind.
func (p Plan) Summary() Summary {
	s := Summary{Unchanged: p.Unchanged, Rejected: len(p.Rejected)}
	for _, op := range p.Operations {
		s.Add(op.Kind)
	}
	return s
}

func (s *Summary) Add(kind OpKind) {
	switch kind {
	case OpCreate:
		s.Create++
	case OpPatch:
		s.Patch++
	case OpMerge:
		s.Merge++
	case OpDelete:
		s.Delete++
	}
}

// sent drops what only Sinch needed from operations that have been sent:
// the request bodies and the contacts kept for the journal. A full run's
// report holds every operation it made, a hundred thousand at a million
// contacts, and needs only what they were and why.
func (p *Plan) DropBodies() {
	for i := range p.Operations {
		p.Operations[i].Contact, p.Operations[i].Before = nil, nil
	}
}

// detach copies the strings of the plan that point into an index (the
// external_ids, the contacts' fields) into one buffer of the plan's own, so
// that the plan no longer holds the index's arenas alive. A full run
// holds its plan, and its report, to the end, long after the index is
// done with: at a million records, operations on one row in ten would
// otherwise keep every chunk of the index's 100 MB of records.
func (p *Plan) Detach() {
	// The lists in the contacts may be shared with the index's records
	// (a channel priority, say): the plan gets lists of its own before
	// their strings move. The operations, their changes and their Before
	// are the diff's own.
	own := func(c *sinch.Contact) {
		c.ChannelIdentities = slices.Clone(c.ChannelIdentities)
		c.ChannelPriority = slices.Clone(c.ChannelPriority)
	}
	for i := range p.Operations {
		op := &p.Operations[i]
		if op.Contact != nil {
			body := *op.Contact
			own(&body)
			op.Contact = &body
		}
		for j := range op.Before {
			own(&op.Before[j])
		}
	}
	need := 0
	p.eachString(func(s *string) { need += len(*s) })
	buf := make([]byte, 0, need)
	p.eachString(func(s *string) {
		if *s != "" {
			start := len(buf)
			buf = append(buf, *s...)
			*s = unsafe.String(&buf[start], len(*s))
		}
	})
}

// eachString calls fn with every string of the plan that may point into a
// index.
func (p *Plan) eachString(fn func(*string)) {
	contact := func(c *sinch.Contact) {
		for _, s := range []*string{&c.ID, &c.ExternalID, &c.DisplayName, &c.Email, &c.Language, &c.Metadata} {
			fn(s)
		}
		for i := range c.ChannelIdentities {
			id := &c.ChannelIdentities[i]
			channel(&id.Channel, fn)
			fn(&id.Identity)
			fn(&id.AppID)
		}
		for i := range c.ChannelPriority {
			channel(&c.ChannelPriority[i], fn)
		}
	}
	for i := range p.Operations {
		op := &p.Operations[i]
		fn(&op.ExternalID)
		fn(&op.ContactID)
		fn(&op.SourceContactID)
		fn(&op.Linked)
		fn(&op.Hash)
		for j := range op.Changes {
			fn(&op.Changes[j].Old)
			fn(&op.Changes[j].New)
		}
		if op.Contact != nil {
			contact(op.Contact)
		}
		for j := range op.Before {
			contact(&op.Before[j])
		}
	}
	for i := range p.Links {
		fn(&p.Links[i].ExternalID)
		fn(&p.Links[i].ContactID)
		fn(&p.Links[i].ContentHash)
	}
	for i := range p.Rejected {
		fn(&p.Rejected[i].ExternalID)
	}
}

// channel is fn for a channel name that is not one of sinch.Channels; a
// known one becomes sinch.Channels' own string, which points nowhere.
func channel(ch *string, fn func(*string)) {
	if code, ok := channelCodes[*ch]; ok {
		*ch = sinch.Channels[code-1]
		return
	}
	fn(ch)
}

// Empty reports whether the plan has nothing to send.
func (p Plan) Empty() bool { return len(p.Operations) == 0 }

// Describe is the plan's summary in one line, with the delete guard's
// verdict beside the count of deletes it withholds, so that nobody reads
// "1 to delete" and expects a delete.
func (p Plan) Describe() string {
	s := p.Summary()
	if p.DeleteGuard == "" {
		return s.String()
	}
	withheld := 0
	for _, op := range p.Operations {
		if op.Removes() {
			withheld++
		}
	}
	return fmt.Sprintf("%d to create, %d to patch, %d to merge, %d to delete (%d withheld by the delete guard: %s), %d unchanged, %d rejected",
		s.Create, s.Patch, s.Merge, s.Delete, withheld, p.DeleteGuard, s.Unchanged, s.Rejected)
}

func (s Summary) String() string {
	return fmt.Sprintf("%d to create, %d to patch, %d to merge, %d to delete, %d unchanged, %d rejected",
		s.Create, s.Patch, s.Merge, s.Delete, s.Unchanged, s.Rejected)
}

// DescribeValues renders fields set from nothing as `field "new"`.
func DescribeValues(changes []Change, redact bool) string {
	parts := make([]string, 0, len(changes))
	for _, c := range changes {
		if redact {
			parts = append(parts, c.Field)
			continue
		}
		parts = append(parts, c.Field+" "+strconv.Quote(c.New))
	}
	return strings.Join(parts, ", ")
}

// DescribeChanges renders changes as `field "old" → "new"`, with values
// masked when redact is set.
func DescribeChanges(changes []Change, redact bool) string {
	parts := make([]string, 0, len(changes))
	for _, c := range changes {
		if redact {
			parts = append(parts, c.Field)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s → %s", c.Field, strconv.Quote(c.Old), strconv.Quote(c.New)))
	}
	return strings.Join(parts, "; ")
}

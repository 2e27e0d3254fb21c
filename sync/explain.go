package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/state"
)

// History is what Explain reads of syncd's own records besides the
// reconciler's Links; *state.Store has it.
type History interface {
	LinkOf(ctx context.Context, projectID, externalID string) (planner.Link, bool, error)
	LinkByContact(ctx context.Context, projectID, contactID string) (planner.Link, bool, error)
	Timeline(ctx context.Context, projectID, externalID, contactID string) ([]state.TimelineEntry, error)
	Events() *state.Events
}

// ErrNotFound says that an id names no CRM record, no Sinch contact and
// nothing in the journal.
var ErrNotFound = errors.New("not found")

// Explanation answers "why is this contact like this?" for one record.
type Explanation struct {
	Query      string `json:"query"`
	ExternalID string `json:"external_id"`
	// Record is the CRM row as read; nil when the source has none.
	Record *RecordView `json:"record"`
	// Normalized is the contact the row asks for; nil when it is rejected
	// or there is no row.
	Normalized *NormalizedView    `json:"normalized"`
	Rejection  *planner.Rejection `json:"rejection"`
	Link       *LinkView          `json:"link"`
	// Contacts are the Sinch contacts now that carry the external_id or
	// are linked to it.
	Contacts []sinch.Contact `json:"contacts"`
	// Operations are what a diff would do about it, each with its reason.
	Operations []planner.Operation `json:"operations"`
	Verdict    string              `json:"verdict"`
	// Notes are the plan's notes about the scope: identities shared by two
	// records, contacts left alone.
	Notes []string `json:"notes"`
	// Deferred says whether a partial run leaves the record to the next
	// full run (its scope is past the bound), or has queued it there.
	Deferred []DeferredView `json:"deferred"`
	// Parked are the Sinch events that failed alone every time and are set
	// aside, which name the record's contacts or carry its external_id:
	// `syncd events retry ID` puts one back.
	Parked   []state.ParkedEvent `json:"parked"`
	Timeline []Event             `json:"timeline"`
}

// RecordView is a crm.Record as JSON shows it: null for NULL.
type RecordView struct {
	ExternalID        string     `json:"external_id"`
	DisplayName       *string    `json:"display_name"`
	Email             *string    `json:"email"`
	Phone             *string    `json:"phone"`
	ChannelIdentities *string    `json:"channel_identities"`
	ChannelPriority   []string   `json:"channel_priority"`
	Language          *string    `json:"language"`
	Metadata          *string    `json:"metadata"`
	UpdatedAt         time.Time  `json:"updated_at"`
	DeletedAt         *time.Time `json:"deleted_at"`
}

// NormalizedView is a Desired as JSON shows it: null where the CRM has no
// opinion and Sinch's value stays.
type NormalizedView struct {
	DisplayName       *string                 `json:"display_name"`
	Email             *string                 `json:"email"`
	Language          *string                 `json:"language"`
	Metadata          *string                 `json:"metadata"`
	ChannelIdentities []sinch.ChannelIdentity `json:"channel_identities"`
	ManagedChannels   []string                `json:"managed_channels"`
	ChannelPriority   []string                `json:"channel_priority"`
	Deleted           bool                    `json:"deleted"`
	Hash              string                  `json:"hash"`
}

// DeferredView is a change left to the next full run.
type DeferredView struct {
	Kind   string    `json:"kind"` // record or contact
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	Queued bool      `json:"queued"` // in the queue, rather than only what a partial run would do now
	At     time.Time `json:"at,omitzero"`
}

// LinkView is the stored link of the record to its contact.
type LinkView struct {
	ContactID   string    `json:"contact_id"`
	ContentHash string    `json:"content_hash"`
	SyncedAt    time.Time `json:"synced_at"`
}

// Event is one journal entry of the timeline.
type Event struct {
	At              time.Time      `json:"at"`
	FinishedAt      *time.Time     `json:"finished_at"`
	RunID           int64          `json:"run_id"`
	RunKind         state.RunKind  `json:"run_kind"`
	Kind            planner.OpKind `json:"kind"`
	ExternalID      string         `json:"external_id"`
	ContactID       string         `json:"contact_id"`
	SourceContactID string         `json:"source_contact_id"`
	UpdateMask      []string       `json:"update_mask"`
	Reason          string         `json:"reason"`
	Status          state.Status   `json:"status"`
	HTTPStatus      int            `json:"http_status"`
	Error           string         `json:"error"`
	// Contacts are, for a merge or a delete, the full contacts it touched
	// as syncd read them before sending it: what was removed.
	Contacts json.RawMessage `json:"contacts"`
	// Changes are the fields the operation set, old -> new: a patch's
	// fields, a create's values (old ""), and the fields of the contact a
	// delete removed or a merge's source gave up (new ""). Empty for a
	// reject, and for entries journaled before syncd kept values.
	Changes []planner.Change `json:"changes"`
}

// Describe is the event's fields old -> new as the diff shows an
// operation's: field names only when redact is set.
func (e Event) Describe(redact bool) string {
	if len(e.Changes) == 0 {
		return ""
	}
	switch e.Kind {
	case planner.OpCreate:
		return "sent: " + planner.DescribeValues(e.Changes, redact)
	case planner.OpDelete:
		return "removed the contact: " + planner.DescribeValues(oldAsNew(e.Changes), redact)
	case planner.OpMerge:
		return "merged the source away: " + planner.DescribeValues(oldAsNew(e.Changes), redact)
	}
	return planner.DescribeChanges(e.Changes, redact)
}

// oldAsNew shows the values a contact had, for DescribeValues.
func oldAsNew(changes []planner.Change) []planner.Change {
	out := make([]planner.Change, len(changes))
	for i, c := range changes {
		out[i] = planner.Change{Field: c.Field, New: c.Old}
	}
	return out
}

// eventChanges reads an entry's changes; a merge's or delete's are the
// fields of the contact it removed, which the journal keeps whole.
func eventChanges(e state.TimelineEntry) ([]planner.Change, error) {
	changes := []planner.Change{}
	if len(e.Changes) > 0 {
		if err := json.Unmarshal(e.Changes, &changes); err != nil {
			return nil, fmt.Errorf("journal entry %d: changes: %w", e.ID, err)
		}
		return changes, nil
	}
	if len(e.Contacts) == 0 || (e.Kind != planner.OpDelete && e.Kind != planner.OpMerge) {
		return changes, nil
	}
	var contacts []sinch.Contact
	if err := json.Unmarshal(e.Contacts, &contacts); err != nil {
		return nil, fmt.Errorf("journal entry %d: contacts: %w", e.ID, err)
	}
	removed := e.ContactID
	if e.Kind == planner.OpMerge {
		removed = e.SourceContactID
	}
	for _, c := range contacts {
		if c.ID != removed {
			continue
		}
		for _, f := range (planner.Operation{Kind: planner.OpCreate, Contact: &c}).Sent() {
			changes = append(changes, planner.Change{Field: f.Field, Old: f.New})
		}
	}
	return changes, nil
}

// Explain gathers, for id (a CRM external_id or a Sinch contact id), the
// CRM row as read and as normalised, its link, its Sinch contacts now, what
// a diff would do about it and why, and the journal's timeline. It writes
// nothing. The diff is that of a partial run whose scope is the record or
// contact and everything connected to it, every identity looked up: what a
// full run would decide there. The delete guard, which weighs a whole
// run's deletes, is left to syncd diff.
func (r *Reconciler) Explain(ctx context.Context, h History, id string) (Explanation, error) {
	ex := Explanation{Query: id, Contacts: []sinch.Contact{}, Operations: []planner.Operation{}, Parked: []state.ParkedEvent{}, Timeline: []Event{}}
	recs, err := r.CRM.RecordsByExternalID(ctx, r.Source, []string{id})
	var rowErr *crm.RowError
	if err != nil && !errors.As(err, &rowErr) {
		return ex, err
	}
	ext := id
	link, linked, err := h.LinkOf(ctx, r.ProjectID, id)
	if err != nil {
		return ex, err
	}
	var byID *sinch.Contact
	if len(recs) == 0 && rowErr == nil && !linked {
		// Not a CRM id syncd knows: perhaps a Sinch contact's.
		if link, linked, err = h.LinkByContact(ctx, r.ProjectID, id); err != nil {
			return ex, err
		}
		c, err := r.Sinch.GetContact(ctx, id)
		switch {
		case sinch.IsNotFound(err):
		case err != nil:
			return ex, fmt.Errorf("read contact %s: %w", id, err)
		default:
			byID = c
		}
		switch {
		case linked:
			ext = link.ExternalID
		case byID != nil && byID.ExternalID != "":
			ext = byID.ExternalID
		case byID != nil:
			ext = ""
		}
		if ext != "" && ext != id {
			if recs, err = r.CRM.RecordsByExternalID(ctx, r.Source, []string{ext}); err != nil && !errors.As(err, &rowErr) {
				return ex, err
			}
			if !linked {
				if link, linked, err = h.LinkOf(ctx, r.ProjectID, ext); err != nil {
					return ex, err
				}
			}
		}
	}
	ex.ExternalID = ext
	if linked {
		ex.Link = &LinkView{ContactID: link.ContactID, ContentHash: link.ContentHash, SyncedAt: link.SyncedAt}
	}
	switch {
	case len(recs) > 0:
		ex.Record = recordView(recs[0])
		if d, rej := planner.Normalize(recs[0], r.Options); rej != nil {
			ex.Rejection = rej
		} else {
			ex.Normalized = normalizedView(d)
		}
	case rowErr != nil:
		ex.Rejection = &planner.Rejection{ExternalID: rowErr.ExternalID, Column: rowErr.Column, Reason: rowErr.Err.Error()}
	}
	contactID := id
	if linked {
		contactID = link.ContactID
	}
	if len(recs) == 0 && rowErr == nil && !linked && byID == nil {
		if events, err := h.Timeline(ctx, r.ProjectID, id, id); err != nil || len(events) == 0 {
			if err == nil {
				err = fmt.Errorf("%q is no CRM external_id in %s, no Sinch contact id and nowhere in the journal: %w", id, r.Source, ErrNotFound)
			}
			return ex, err
		}
	}

	if ext != "" || byID != nil {
		// One record cannot judge a run's deletes: no guard.
		scope := &partialScope{r: r, allIdentities: true, noGuard: true}
		if ext != "" {
			scope.records = []string{ext}
		}
		if byID != nil {
			scope.contacts = []string{byID.ID}
		}
		plan, _, _, err := r.plan(ctx, scope)
		if err != nil {
			return ex, err
		}
		for _, c := range scope.found.contacts {
			if c.ExternalID == ext && ext != "" || linked && c.ID == link.ContactID || byID != nil && c.ID == byID.ID {
				ex.Contacts = append(ex.Contacts, c)
			}
		}
		ex.Operations = append(ex.Operations, plan.Operations...)
		ex.Notes = plan.Notes
		queued, err := r.Deferrals.Deferred(ctx, r.ProjectID, state.DeferRecord, []string{ext})
		if err != nil {
			return ex, err
		}
		for _, d := range queued {
			ex.Deferred = append(ex.Deferred, DeferredView{Kind: d.Kind, Key: d.Key, Reason: d.Reason, Queued: true, At: d.DeferredAt})
		}
		if len(queued) == 0 {
			for _, d := range scope.found.deferred {
				ex.Deferred = append(ex.Deferred, DeferredView{Kind: d.Kind, Key: d.Key, Reason: d.Reason})
			}
		}
		ex.Verdict = verdict(ex, plan)
	}
	if ext == "" {
		ex.Verdict = "the contact carries no external_id, so it is no CRM record's; syncd leaves it alone" + deferredVerdict(ex)
	}

	named := []string{id, contactID}
	if byID != nil {
		named = append(named, byID.ID)
	}
	for _, c := range ex.Contacts {
		named = append(named, c.ID)
	}
	slices.Sort(named)
	named = slices.DeleteFunc(slices.Compact(named), func(s string) bool { return s == "" })
	parked, err := h.Events().ParkedNaming(ctx, r.ProjectID, named, ext, parkedShown)
	if err != nil {
		return ex, err
	}
	ex.Parked = append(ex.Parked, parked...)

	events, err := h.Timeline(ctx, r.ProjectID, ext, contactID)
	if err != nil {
		return ex, err
	}
	for _, e := range events {
		changes, err := eventChanges(e)
		if err != nil {
			return ex, err
		}
		ex.Timeline = append(ex.Timeline, Event{At: e.CreatedAt, FinishedAt: e.FinishedAt, RunID: e.RunID, RunKind: e.RunKind,
			Kind: e.Kind, ExternalID: e.ExternalID, ContactID: e.ContactID, SourceContactID: e.SourceContactID,
			UpdateMask: e.UpdateMask, Reason: e.Reason, Status: e.Status, HTTPStatus: e.HTTPStatus, Error: e.Error,
			Contacts: json.RawMessage(e.Contacts), Changes: changes})
	}
	return ex, nil
}

// parkedShown bounds the parked events an explanation lists.
const parkedShown = 20

// deferredVerdict adds to a verdict that a partial run would leave the
// record to the next full run, or has queued it there.
func deferredVerdict(ex Explanation) string {
	if len(ex.Deferred) == 0 {
		return ""
	}
	d := ex.Deferred[0]
	if d.Queued {
		return "; queued for the next full run since " + d.At.Format(time.RFC3339) + ": " + d.Reason
	}
	return "; a partial run would leave it to the next full run: " + d.Reason
}

func verdict(ex Explanation, plan planner.Plan) string {
	if len(ex.Deferred) > 0 && len(plan.Operations) == 0 {
		// Its scope was left out of the plan: nothing can be said of it
		// but that.
		return strings.TrimPrefix(deferredVerdict(ex), "; ")
	}
	return verdictOf(ex, plan) + deferredVerdict(ex)
}

func verdictOf(ex Explanation, plan planner.Plan) string {
	switch {
	case len(plan.Operations) > 0:
		return fmt.Sprintf("a diff would make %d operation(s): %s", len(plan.Operations), plan.Summary())
	case ex.Rejection != nil:
		return "the row is rejected, so syncd leaves its contact as it is: " + ex.Rejection.String()
	case ex.Record == nil && ex.Link == nil:
		return "no CRM row and no link: syncd has nothing to do with it"
	case ex.Record != nil && ex.Record.DeletedAt != nil && len(ex.Contacts) == 0:
		return "the row is deleted and has no contact: nothing to do"
	default:
		return "in sync: a diff would do nothing"
	}
}

func recordView(rec crm.Record) *RecordView {
	v := &RecordView{ExternalID: rec.ExternalID, DisplayName: rec.DisplayName, Email: rec.Email, Phone: rec.Phone,
		ChannelPriority: rec.ChannelPriority, Language: rec.Language, Metadata: rec.Metadata,
		UpdatedAt: rec.UpdatedAt, DeletedAt: rec.DeletedAt}
	if rec.ChannelIdentities != nil {
		s := string(rec.ChannelIdentities)
		v.ChannelIdentities = &s
	}
	return v
}

func normalizedView(d planner.Desired) *NormalizedView {
	return &NormalizedView{DisplayName: d.DisplayName, Email: d.Email, Language: d.Language, Metadata: d.Metadata,
		ChannelIdentities: d.Identities, ManagedChannels: d.Managed, ChannelPriority: d.ChannelPriority,
		Deleted: d.Deleted, Hash: d.Hash}
}

// Redacted is the explanation with its values hidden, as syncd diff
// --redact hides them: names, phone numbers, e-mails, languages, metadata
// and channel identities become planner.Redacted, in the CRM row, the normalised
// contact, Sinch's contacts, the pending operations and the timeline's old
// and new values; reasons keep their words and lose the values they quote
// (RedactReason). Ids, field and channel names, NULLs, times, statuses and
// hashes stay: they say what happened without saying to whom.
func (ex Explanation) Redacted() (Explanation, error) {
	out := ex
	if r := ex.Record; r != nil {
		v := *r
		v.DisplayName, v.Email, v.Phone = redactPtr(v.DisplayName), redactPtr(v.Email), redactPtr(v.Phone)
		v.ChannelIdentities, v.Language, v.Metadata = redactPtr(v.ChannelIdentities), redactPtr(v.Language), redactPtr(v.Metadata)
		out.Record = &v
	}
	if n := ex.Normalized; n != nil {
		v := *n
		v.DisplayName, v.Email, v.Language, v.Metadata = redactPtr(v.DisplayName), redactPtr(v.Email), redactPtr(v.Language), redactPtr(v.Metadata)
		v.ChannelIdentities = redactIdentities(v.ChannelIdentities)
		out.Normalized = &v
	}
	if ex.Rejection != nil {
		rej := *ex.Rejection
		rej.Reason = planner.RedactReason(rej.Reason)
		out.Rejection = &rej
	}
	out.Contacts = redactContacts(ex.Contacts)
	out.Operations = make([]planner.Operation, len(ex.Operations))
	for i, op := range ex.Operations {
		op.Changes = planner.RedactChanges(op.Changes, true)
		if op.Contact != nil {
			c := redactContact(*op.Contact)
			op.Contact = &c
		}
		op.Before = redactContacts(op.Before)
		out.Operations[i] = op
	}
	out.Verdict = planner.RedactReason(ex.Verdict)
	out.Notes = make([]string, len(ex.Notes))
	for i, n := range ex.Notes {
		out.Notes[i] = planner.RedactReason(n)
	}
	out.Parked = make([]state.ParkedEvent, len(ex.Parked))
	for i, p := range ex.Parked {
		p.Reason = planner.RedactReason(p.Reason)
		out.Parked[i] = p
	}
	out.Timeline = make([]Event, len(ex.Timeline))
	for i, e := range ex.Timeline {
		e.Reason, e.Error = planner.RedactReason(e.Reason), planner.RedactReason(e.Error)
		e.Changes = planner.RedactChanges(e.Changes, true)
		if len(e.Contacts) > 0 {
			var contacts []sinch.Contact
			if err := json.Unmarshal(e.Contacts, &contacts); err != nil {
				return ex, fmt.Errorf("redact journal entry of run %d: %w", e.RunID, err)
			}
			b, err := json.Marshal(redactContacts(contacts))
			if err != nil {
				return ex, fmt.Errorf("redact journal entry of run %d: %w", e.RunID, err)
			}
			e.Contacts = b
		}
		out.Timeline[i] = e
	}
	return out, nil
}

func redactPtr(v *string) *string {
	if v == nil {
		return nil
	}
	s := planner.Redacted
	return &s
}

func redactContacts(cs []sinch.Contact) []sinch.Contact {
	if cs == nil {
		return nil
	}
	out := make([]sinch.Contact, len(cs))
	for i, c := range cs {
		out[i] = redactContact(c)
	}
	return out
}

// redactContact keeps a contact's ids and channel names.
func redactContact(c sinch.Contact) sinch.Contact {
	c.DisplayName, c.Email, c.Language, c.Metadata = planner.RedactValue(c.DisplayName), planner.RedactValue(c.Email), planner.RedactValue(c.Language), planner.RedactValue(c.Metadata)
	c.ChannelIdentities = redactIdentities(c.ChannelIdentities)
	return c
}

func redactIdentities(ids []sinch.ChannelIdentity) []sinch.ChannelIdentity {
	if ids == nil {
		return nil
	}
	out := make([]sinch.ChannelIdentity, len(ids))
	for i, id := range ids {
		id.Identity = planner.RedactValue(id.Identity)
		out[i] = id
	}
	return out
}

package sync

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// ReportOptions shape how a plan is rendered.
type ReportOptions struct {
	// Redact hides field values (phone numbers, e-mails, names), leaving
	// field names, for reports that leave the operator's machine.
	Redact bool
}

// reportOperation is an operation as the JSON report shows it: every key is
// present, so that tools reading the report need no special cases.
type reportOperation struct {
	Kind            OpKind   `json:"kind"`
	ExternalID      string   `json:"external_id"`
	ContactID       string   `json:"contact_id"`
	SourceContactID string   `json:"source_contact_id"`
	UpdateMask      []string `json:"update_mask"`
	Reason          string   `json:"reason"`
	Rule            string   `json:"rule"`
	Changes         []Change `json:"changes"`
}

type reportJSON struct {
	Summary     Summary           `json:"summary"`
	Operations  []reportOperation `json:"operations"`
	Rejected    []Rejection       `json:"rejected"`
	DeleteGuard string            `json:"delete_guard,omitempty"`
	Notes       []string          `json:"notes,omitempty"`
}

// WriteJSON renders the plan as one JSON object.
func WriteJSON(w io.Writer, p Plan, opts ReportOptions) error {
	out := reportJSON{
		Summary:     p.Summary(),
		Operations:  make([]reportOperation, 0, len(p.Operations)),
		Rejected:    make([]Rejection, 0, len(p.Rejected)),
		DeleteGuard: p.DeleteGuard,
		Notes:       p.Notes,
	}
	for _, op := range p.Operations {
		ro := reportOperation{
			Kind: op.Kind, ExternalID: op.ExternalID, ContactID: op.ContactID, SourceContactID: op.SourceContactID,
			UpdateMask: op.UpdateMask, Reason: op.Explain(opts.Redact), Rule: op.Rule, Changes: op.Changes,
		}
		if ro.UpdateMask == nil {
			ro.UpdateMask = []string{}
		}
		if ro.Changes == nil || opts.Redact {
			ro.Changes = redactChanges(op.Changes, opts.Redact)
		}
		out.Operations = append(out.Operations, ro)
	}
	for _, rej := range p.Rejected {
		if opts.Redact {
			rej.Reason = "(redacted)"
		}
		out.Rejected = append(out.Rejected, rej)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteText renders the plan for a person: one line per operation with its
// reason, the rejected rows, and a summary line.
func WriteText(w io.Writer, p Plan, opts ReportOptions) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, op := range p.Operations {
		target := op.ContactID
		switch {
		case op.Kind == OpCreate:
			target = "(new)"
		case op.Kind == OpMerge:
			target = op.ContactID + " ← " + op.SourceContactID
		}
		reason := op.Explain(opts.Redact)
		if len(op.UpdateMask) > 0 {
			reason = "[" + strings.Join(op.UpdateMask, ",") + "] " + reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", op.Kind, op.ExternalID, target, reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, rej := range p.Rejected {
		reason := rej.String()
		if opts.Redact {
			reason = rej.Column + ": (redacted)"
		}
		fmt.Fprintf(w, "rejected  %s  %s\n", rej.ExternalID, reason)
	}
	for _, note := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if p.DeleteGuard != "" {
		fmt.Fprintf(w, "deletes withheld: %s\n", p.DeleteGuard)
	}
	s := p.Summary()
	if p.Empty() {
		_, err := fmt.Fprintf(w, "Nothing to do: %d unchanged, %d rejected.\n", s.Unchanged, s.Rejected)
		return err
	}
	_, err := fmt.Fprintf(w, "Plan: %s.\n", s)
	return err
}

func redactChanges(changes []Change, redact bool) []Change {
	out := make([]Change, len(changes))
	for i, c := range changes {
		if redact {
			c.Old, c.New = "(redacted)", "(redacted)"
		}
		out[i] = c
	}
	return out
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	contactsync "github.com/syncd/syncd/sync"
)

func (e *env) explainCommand() *cobra.Command {
	var (
		format string
		redact bool
	)
	cmd := &cobra.Command{
		Use:   "explain ID",
		Short: "Say why one contact is as it is: its CRM row, link, Sinch contact, pending diff and history",
		Long: `Explain one record, named by its CRM external_id or by a Sinch contact id: the
CRM row as read and as normalised (or why it is rejected), its link to a
Sinch contact, the Sinch contacts that carry it now, what a diff would do to
it and why, the Sinch events about it that failed alone every time and are
parked (syncd events retry puts them back), and the journal's timeline for
it (every operation, when, in which run, its fields old -> new, Sinch's
answer), as far back as journal.retention keeps. Nothing is written.

--redact hides the values (names, phone numbers, e-mails, languages,
metadata, channel identities, old and new values) as 'syncd diff --redact'
does, and keeps the ids, field names, reasons and statuses: for a ticket.

The diff is that of an incremental run for this one record: whether the
delete guard would withhold a delete depends on the whole run, which
'syncd diff' shows.

Exit status: 0, 1 error or an id that names nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format: %q is not one of text, json", format)
			}
			d, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer d.Close()
			ex, err := d.reconciler(false).Explain(cmd.Context(), d.store, args[0])
			if errors.Is(err, contactsync.ErrNotFound) {
				return err
			}
			if err != nil {
				return fmt.Errorf("explain %s: %w", args[0], err)
			}
			if redact {
				if ex, err = ex.Redacted(); err != nil {
					return fmt.Errorf("explain %s: %w", args[0], err)
				}
			}
			if format == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ex)
			}
			return writeExplanation(e.stdout, ex, redact)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	cmd.Flags().BoolVar(&redact, "redact", false, "hide values (names, phone numbers, e-mails, old and new values), keep ids, fields and reasons")
	_ = cmd.RegisterFlagCompletionFunc("format", completeValues([]string{"text", "json"}, false))
	return cmd
}

func writeExplanation(w io.Writer, ex contactsync.Explanation, redact bool) error {
	title := ex.ExternalID
	if ex.Query != ex.ExternalID {
		title = fmt.Sprintf("%s (asked for %s)", ex.ExternalID, ex.Query)
	}
	// Ids, reasons and Sinch's answers are printed as they are, so each
	// goes through TerminalEscape as in syncd diff; values are quoted.
	esc := planner.TerminalEscape
	fmt.Fprintf(w, "Record %s\n\n", esc(title))

	fmt.Fprintln(w, "CRM row as read:")
	if r := ex.Record; r != nil {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		field := func(name string, v *string) {
			fmt.Fprintf(tw, "  %s\t%s\n", name, nullable(v))
		}
		field("display_name", r.DisplayName)
		field("email", r.Email)
		field("phone", r.Phone)
		field("channel_identities", r.ChannelIdentities)
		if r.ChannelPriority == nil {
			fmt.Fprintf(tw, "  channel_priority\tNULL\n")
		} else {
			fmt.Fprintf(tw, "  channel_priority\t%s\n", strconv.Quote(strings.Join(r.ChannelPriority, ",")))
		}
		field("language", r.Language)
		field("metadata", r.Metadata)
		fmt.Fprintf(tw, "  updated_at\t%s\n", r.UpdatedAt.Local().Format(timeLayout))
		if r.DeletedAt != nil {
			fmt.Fprintf(tw, "  deleted_at\t%s\n", r.DeletedAt.Local().Format(timeLayout))
		} else {
			fmt.Fprintf(tw, "  deleted_at\tNULL\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(w, "  no row with this external_id in the CRM source")
	}

	fmt.Fprintln(w, "\nAs normalised:")
	switch n := ex.Normalized; {
	case ex.Rejection != nil:
		fmt.Fprintf(w, "  rejected: %s\n", esc(ex.Rejection.String()))
	case n == nil:
		fmt.Fprintln(w, "  (no row)")
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		opinion := func(name string, v *string) {
			if v == nil {
				fmt.Fprintf(tw, "  %s\t(no opinion: Sinch's value stays)\n", name)
				return
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, quote(*v))
		}
		opinion("display_name", n.DisplayName)
		opinion("email", n.Email)
		opinion("language", n.Language)
		opinion("metadata", n.Metadata)
		managed := "no channel"
		if len(n.ManagedChannels) > 0 {
			managed = strings.Join(n.ManagedChannels, ", ")
		}
		fmt.Fprintf(tw, "  channel_identities\t%s (syncd decides %s)\n", esc(identities(n.ChannelIdentities)), managed)
		if n.Deleted {
			fmt.Fprintf(tw, "  deleted\tyes\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nLink:")
	if l := ex.Link; l != nil {
		fmt.Fprintf(w, "  contact %s, last synced %s\n", esc(l.ContactID), l.SyncedAt.Local().Format(timeLayout))
	} else {
		fmt.Fprintln(w, "  none: syncd has not synced this record to a contact")
	}

	fmt.Fprintln(w, "\nSinch now:")
	if len(ex.Contacts) == 0 {
		fmt.Fprintln(w, "  no contact carries this external_id")
	}
	for _, c := range ex.Contacts {
		fmt.Fprintf(w, "  %s external_id %s, display_name %s, email %s, language %s, identities %s\n",
			esc(c.ID), strconv.Quote(c.ExternalID), quote(c.DisplayName), quote(c.Email), esc(c.Language), esc(identities(c.ChannelIdentities)))
	}

	fmt.Fprintln(w, "\nA diff now:")
	fmt.Fprintf(w, "  %s\n", esc(ex.Verdict))
	for _, op := range ex.Operations {
		target := op.ContactID
		if op.Kind == planner.OpMerge {
			target = op.SourceContactID + " → " + op.ContactID
		}
		if op.ExternalID != ex.ExternalID {
			// Another record of its scope: the two are decided together.
			target = op.ExternalID + " " + target
		}
		fmt.Fprintf(w, "  %s %s: %s\n", op.Kind, esc(strings.TrimSpace(target)), esc(op.Explain(redact)))
	}
	for _, n := range ex.Notes {
		if redact {
			n = planner.RedactReason(n)
		}
		fmt.Fprintf(w, "  note: %s\n", esc(n))
	}

	if len(ex.Parked) > 0 {
		fmt.Fprintln(w, "\nParked Sinch events (they failed alone every time; syncd events retry ID puts one back):")
		for _, p := range ex.Parked {
			fmt.Fprintf(w, "  event %d %s, received %s, parked %s after %d attempts: %s\n", p.ID, esc(p.Trigger),
				p.ReceivedAt.Local().Format(timeLayout), p.ParkedAt.Local().Format(timeLayout), p.Attempts, esc(p.Reason))
		}
	}

	fmt.Fprintln(w, "\nTimeline (journal):")
	if len(ex.Timeline) == 0 {
		fmt.Fprintln(w, "  nothing in the journal (never synced, or older than journal.retention)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ev := range ex.Timeline {
		answer := string(ev.Status)
		if ev.HTTPStatus != 0 {
			answer += fmt.Sprintf(" (HTTP %d)", ev.HTTPStatus)
		}
		if ev.Error != "" {
			answer += ": " + ev.Error
		}
		what := string(ev.Kind)
		if ev.ContactID != "" {
			what += " " + ev.ContactID
		}
		if ev.SourceContactID != "" {
			what += " ← " + ev.SourceContactID
		}
		if len(ev.UpdateMask) > 0 {
			what += " [" + strings.Join(ev.UpdateMask, ",") + "]"
		}
		if len(ev.Contacts) > 0 {
			answer += "; --format json has the whole contacts it removed"
		}
		fmt.Fprintf(tw, "  %s\trun %d (%s)\t%s\t%s\t%s\n", ev.At.Local().Format(timeLayout), ev.RunID, ev.RunKind, esc(what), esc(ev.Reason), esc(answer))
		if d := ev.Describe(redact); d != "" {
			// The last cell is in no column: long values widen nothing.
			fmt.Fprintf(tw, "  \t\t↳ %s\n", esc(d))
		}
	}
	return tw.Flush()
}

func nullable(v *string) string {
	if v == nil {
		return "NULL"
	}
	return quote(*v)
}

// quote quotes a value, and leaves the mark of a redacted one bare.
func quote(v string) string {
	if v == planner.Redacted {
		return v
	}
	return strconv.Quote(v)
}

func identities(ids []sinch.ChannelIdentity) string {
	if len(ids) == 0 {
		return "none"
	}
	return sinch.FormatIdentities(ids)
}

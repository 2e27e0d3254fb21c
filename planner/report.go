package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// ReportOptions shape how a plan is rendered.
type ReportOptions struct {
	// Redact hides field values (phone numbers, e-mails, names), leaving
	// field names, for reports that leave the operator's machine.
	Redact bool
	// Color marks operation kinds with ANSI colours, for a terminal.
	Color bool
	// Limit shows at most this many operations of each kind, with a count
	// of the rest; 0 shows all.
	Limit int
	// Only shows these kinds (create, patch, merge, delete, rejected); empty
	// shows all. The summary always counts everything.
	Only []string
}

func (o ReportOptions) shows(kind string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, kind)
}

// ReportKinds are the sections of a report, in order, as --only names them.
var ReportKinds = []string{string(OpCreate), string(OpPatch), string(OpMerge), string(OpDelete), "rejected"}

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

// ReportVersion is the version of WriteJSON's shape: it changes only when
// a key is renamed or removed, or its meaning changes; keys may be added
// within a version.
const ReportVersion = 1

type reportJSON struct {
	Version     int               `json:"version"`
	Summary     Summary           `json:"summary"`
	Operations  []reportOperation `json:"operations"`
	Rejected    []Rejection       `json:"rejected"`
	DeleteGuard string            `json:"delete_guard,omitempty"`
	Notes       []string          `json:"notes,omitempty"`
}

// WriteJSON renders the plan as one JSON object. Limit does not apply: a
// machine reading it wants everything.
func WriteJSON(w io.Writer, p Plan, opts ReportOptions) error {
	out := reportJSON{
		Version:     ReportVersion,
		Summary:     p.Summary(),
		Operations:  make([]reportOperation, 0, len(p.Operations)),
		Rejected:    make([]Rejection, 0, len(p.Rejected)),
		DeleteGuard: p.DeleteGuard,
		Notes:       p.Notes,
	}
	for _, op := range p.Operations {
		if !opts.shows(string(op.Kind)) {
			continue
		}
		ro := reportOperation{
			Kind: op.Kind, ExternalID: op.ExternalID, ContactID: op.ContactID, SourceContactID: op.SourceContactID,
			UpdateMask: op.UpdateMask, Reason: op.Explain(opts.Redact), Rule: op.Rule, Changes: RedactChanges(op.Sent(), opts.Redact),
		}
		if ro.UpdateMask == nil {
			ro.UpdateMask = []string{}
		}
		out.Operations = append(out.Operations, ro)
	}
	if opts.shows("rejected") {
		for _, rej := range p.Rejected {
			if opts.Redact {
				rej.Reason = RedactReason(rej.Reason)
			}
			out.Rejected = append(out.Rejected, rej)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// ANSI colours per section; terminals that the caller judged able to show
// them (and NO_COLOR unset) get them.
var sectionColor = map[string]string{
	string(OpCreate): "\x1b[32m", string(OpPatch): "\x1b[33m", string(OpMerge): "\x1b[36m",
	string(OpDelete): "\x1b[31m", "rejected": "\x1b[35m",
}

const colorReset = "\x1b[0m"

var sectionSign = map[string]string{
	string(OpCreate): "+", string(OpPatch): "~", string(OpMerge): "<", string(OpDelete): "-", "rejected": "!",
}

// reportLine is one line of a text or Markdown report.
type reportLine struct {
	externalID, target, detail string
}

// sections groups the plan's lines by kind, in report order.
func sections(p Plan, opts ReportOptions) map[string][]reportLine {
	out := make(map[string][]reportLine)
	for _, op := range p.Operations {
		target := op.ContactID
		switch op.Kind {
		case OpCreate:
			target = "(new)"
		case OpMerge:
			target = op.SourceContactID + " → " + op.ContactID
		}
		detail := op.Explain(opts.Redact)
		if len(op.UpdateMask) > 0 {
			detail = "[" + strings.Join(op.UpdateMask, ",") + "] " + detail
		}
		out[string(op.Kind)] = append(out[string(op.Kind)], reportLine{op.ExternalID, target, detail})
	}
	for _, rej := range p.Rejected {
		if opts.Redact {
			rej.Reason = RedactReason(rej.Reason)
		}
		reason := rej.String()
		out["rejected"] = append(out["rejected"], reportLine{rej.ExternalID, "", reason})
	}
	return out
}

var sectionTitle = map[string]string{
	string(OpCreate): "Create", string(OpPatch): "Patch", string(OpMerge): "Merge", string(OpDelete): "Delete", "rejected": "Rejected",
}

// WriteText renders the plan for a person: grouped by kind, one line per
// operation with the CRM id, the Sinch id and the reason, then a summary.
func WriteText(w io.Writer, p Plan, opts ReportOptions) error {
	paint := func(kind, s string) string {
		if !opts.Color {
			return s
		}
		return sectionColor[kind] + s + colorReset
	}
	groups := sections(p, opts)
	for _, kind := range ReportKinds {
		lines := groups[kind]
		if len(lines) == 0 || !opts.shows(kind) {
			continue
		}
		fmt.Fprintln(w, paint(kind, fmt.Sprintf("%s (%d)", sectionTitle[kind], len(lines))))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		shown := lines
		if opts.Limit > 0 && len(shown) > opts.Limit {
			shown = shown[:opts.Limit]
		}
		for _, l := range shown {
			fmt.Fprintf(tw, "  %s %s\t%s\t%s\n", paint(kind, sectionSign[kind]), TerminalEscape(l.externalID), TerminalEscape(l.target), TerminalEscape(l.detail))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if rest := len(lines) - len(shown); rest > 0 {
			fmt.Fprintf(w, "  … and %d more\n", rest)
		}
		fmt.Fprintln(w)
	}
	for _, note := range p.Notes {
		fmt.Fprintf(w, "Note: %s\n", TerminalEscape(note))
	}
	s := p.Summary()
	if p.Empty() {
		_, err := fmt.Fprintf(w, "Nothing to do: %d unchanged, %d rejected.\n", s.Unchanged, s.Rejected)
		return err
	}
	_, err := fmt.Fprintf(w, "Plan: %s.\n", p.Describe())
	return err
}

// WriteMarkdown renders the plan for a ticket or a pull request: a summary
// table, then one collapsible section per kind.
func WriteMarkdown(w io.Writer, p Plan, opts ReportOptions) error {
	s := p.Summary()
	fmt.Fprintln(w, "### syncd plan")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| create | patch | merge | delete | unchanged | rejected |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %d | %d | %d | %d | %d | %d |\n", s.Create, s.Patch, s.Merge, s.Delete, s.Unchanged, s.Rejected)
	fmt.Fprintln(w)
	if p.DeleteGuard != "" {
		fmt.Fprintf(w, "> **Deletes withheld:** %s\n\n", markdownEscape(p.DeleteGuard))
	}
	for _, note := range p.Notes {
		fmt.Fprintf(w, "> Note: %s\n\n", markdownEscape(note))
	}
	groups := sections(p, opts)
	for _, kind := range ReportKinds {
		lines := groups[kind]
		if len(lines) == 0 || !opts.shows(kind) {
			continue
		}
		fmt.Fprintf(w, "<details><summary>%s (%d)</summary>\n\n", sectionTitle[kind], len(lines))
		fmt.Fprintln(w, "| external_id | contact | what and why |")
		fmt.Fprintln(w, "|---|---|---|")
		shown := lines
		if opts.Limit > 0 && len(shown) > opts.Limit {
			shown = shown[:opts.Limit]
		}
		for _, l := range shown {
			fmt.Fprintf(w, "| `%s` | %s | %s |\n", markdownEscape(l.externalID), markdownEscape(l.target), markdownEscape(l.detail))
		}
		if rest := len(lines) - len(shown); rest > 0 {
			fmt.Fprintf(w, "\n… and %d more\n", rest)
		}
		fmt.Fprintln(w, "\n</details>")
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintf(w, "Plan: %s.\n", s)
	return err
}

// markdownEscape keeps CRM values from breaking a table or injecting HTML,
// and from driving the terminal the Markdown is first read on.
func markdownEscape(s string) string {
	return TerminalEscape(strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "\n", " ", "`", "'").Replace(s))
}

// TerminalEscape returns s fit for a terminal, for every CRM value or
// external id printed outside a report too: the characters of s that a
// terminal would act on are written as Go escapes: C0 and C1 controls (ESC[2J in an external_id would clear
// the operator's screen; a tab or a newline would forge report lines), DEL,
// the bidirectional overrides that reorder what is shown, and bytes that are
// not UTF-8 (0x9b alone is CSI to an 8-bit terminal). Everything else,
// accents and scripts included, is kept as it is.
func TerminalEscape(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			q := strconv.QuoteRune(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// Redacted stands in for a value that --redact hides.
const Redacted = "(redacted)"

// RedactValue is v hidden: Redacted, or "" for an empty value, which says
// nothing about anyone.
func RedactValue(v string) string {
	if v == "" {
		return ""
	}
	return Redacted
}

// RedactChanges hides the old and new values of changes when redact is set.
func RedactChanges(changes []Change, redact bool) []Change {
	out := make([]Change, len(changes))
	for i, c := range changes {
		if redact {
			// An empty value says nothing about anyone; shown as
			// "(redacted)" it would claim a value that never was.
			c.Old, c.New = RedactValue(c.Old), RedactValue(c.New)
		}
		out[i] = c
	}
	return out
}

// quotedValue is a value as the rejection reasons quote it (%q).
var quotedValue = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// RedactReason hides the values a reason quotes and keeps the words that
// say what is wrong with them.
func RedactReason(reason string) string {
	return quotedValue.ReplaceAllString(reason, "(redacted)")
}

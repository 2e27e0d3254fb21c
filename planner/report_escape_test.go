package planner_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// TestTextReportEscapesTerminalControls: CRM values and external ids that
// hold terminal controls are shown escaped in the text and Markdown reports,
// never sent to the terminal; the JSON report keeps them as data.
func TestTextReportEscapesTerminalControls(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	records := []crm.Record{
		record("crm-\x1b[2J", func(r *crm.Record) { r.Phone = str("+46732000001") }),
		record("crm-2", func(r *crm.Record) {
			r.Phone = str("+46732000002")
			r.DisplayName = str("Eve\x1b]0;owned\x07\u202e\x9b")
			r.UpdatedAt = now
		}),
		record("crm-3\tforged\ncolumn", func(r *crm.Record) { r.Phone = str("call me\x1b[31m") }),
	}
	contacts := []sinch.Contact{
		mirror("01A2", "crm-2", func(c *sinch.Contact) { setPhone(c, "46732000002") }),
	}
	p := diffOf(t, opts(), true, records, contacts, nil)
	if len(p.Operations) != 2 || len(p.Rejected) != 1 {
		t.Fatalf("plan %+v: want a create, a patch and a reject", p)
	}
	for name, write := range map[string]func(*bytes.Buffer) error{
		"text": func(b *bytes.Buffer) error { return planner.WriteText(b, p, planner.ReportOptions{}) },
		"color": func(b *bytes.Buffer) error {
			return planner.WriteText(b, p, planner.ReportOptions{Color: true})
		},
		"markdown": func(b *bytes.Buffer) error { return planner.WriteMarkdown(b, p, planner.ReportOptions{}) },
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if name == "color" {
				// The report's own colours are the only escapes left.
				for _, c := range []string{"\x1b[32m", "\x1b[33m", "\x1b[35m", "\x1b[0m"} {
					out = strings.ReplaceAll(out, c, "")
				}
			}
			for _, bad := range []string{"\x1b", "\x07", "\u202e", "\x9b", "\t"} {
				if strings.Contains(out, bad) {
					t.Errorf("report holds %q:\n%s", bad, out)
				}
			}
			forged := `crm-3\tforged\ncolumn`
			if name == "markdown" {
				forged = `crm-3\tforged column` // a table cell turns newlines into spaces first
			}
			for _, want := range []string{`crm-\x1b[2J`, `Eve\x1b]0;owned\a\u202e\x9b`, forged} {
				if !strings.Contains(out, want) {
					t.Errorf("report does not show %s escaped:\n%s", want, out)
				}
			}
			if strings.Contains(out, "forged\ncolumn") {
				t.Errorf("an external id forged a line:\n%s", out)
			}
		})
	}
	var b bytes.Buffer
	if err := planner.WriteJSON(&b, p, planner.ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), `crm-\u001b[2J`) {
		t.Errorf("JSON report: %s", b.String())
	}
}

package planner_test

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/report from the current output")

// reportPlan has one operation of every kind, a rejected row and a note.
func reportPlan(t testing.TB) planner.Plan {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	records := []crm.Record{
		record("crm-1"),
		record("crm-2", func(r *crm.Record) { r.Email = str("new|pipe@example.com"); r.Phone = str("+46732000002") }),
		record("crm-3", func(r *crm.Record) { r.Phone = str("+46732000003") }),
		record("crm-4", func(r *crm.Record) { r.DeletedAt = &now; r.Phone = str("+46732000004") }),
		record("crm-5", func(r *crm.Record) { r.Phone = str("call me") }),
		record("crm-6", func(r *crm.Record) { r.Phone = str("+46732000006") }),
		record("crm-7", func(r *crm.Record) { r.Phone = str("+46732000007") }),
	}
	contacts := []sinch.Contact{
		mirror("01A2", "crm-2", func(c *sinch.Contact) { setPhone(c, "46732000002") }),
		mirror("01A3", "crm-3", func(c *sinch.Contact) { setPhone(c, "46732000003") }),
		mirror("01A3B", "crm-3", func(c *sinch.Contact) { setPhone(c, "46732000003"); c.ChannelIdentities = c.ChannelIdentities[:1] }),
		mirror("01A4", "crm-4", func(c *sinch.Contact) { setPhone(c, "46732000004") }),
		mirror("01A6", "crm-6", func(c *sinch.Contact) { setPhone(c, "46732000006"); c.DisplayName = "<b>Jane</b>" }),
		mirror("01A7", "crm-7", func(c *sinch.Contact) { setPhone(c, "46732000007"); c.Language = "SV" }),
	}
	return diffOf(t, opts(func(o *planner.Options) { o.MaxDeleteFraction = 1 }), true, records, contacts, nil)
}

func TestReportGolden(t *testing.T) {
	tests := []struct {
		name   string
		render func(io.Writer, planner.Plan, planner.ReportOptions) error
		opts   planner.ReportOptions
	}{
		{"text", planner.WriteText, planner.ReportOptions{}},
		{"text-color", planner.WriteText, planner.ReportOptions{Color: true}},
		{"text-redact", planner.WriteText, planner.ReportOptions{Redact: true}},
		{"text-limit-only", planner.WriteText, planner.ReportOptions{Limit: 1, Only: []string{"patch", "rejected"}}},
		{"json", planner.WriteJSON, planner.ReportOptions{}},
		{"json-redact", planner.WriteJSON, planner.ReportOptions{Redact: true}},
		{"markdown", planner.WriteMarkdown, planner.ReportOptions{}},
	}
	p := reportPlan(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.render(&buf, p, tt.opts); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "report", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./sync -run TestReportGolden -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("%s differs from %s (rerun with -update and review the diff):\n%s", tt.name, golden, got)
			}
			if strings.Contains(tt.name, "redact") && strings.Contains(buf.String(), "example.com") {
				t.Errorf("a redacted report shows an e-mail address")
			}
			if !tt.opts.Color && strings.Contains(buf.String(), "\x1b[") {
				t.Errorf("a report without colour has escape codes")
			}
		})
	}
}

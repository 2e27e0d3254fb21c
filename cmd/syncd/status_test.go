package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/state"
)

func TestStatus(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	rows := crmRows(3)
	rows[1].Phone = str("not a phone")
	h.load(rows)
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}

	code, out, errOut := h.run("status")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	for _, want := range []string{"no sync running now", "full", "succeeded", "rejected crm-0002: phone", "REJECTED  REFUSED  DEFERRED  FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// While another session holds the lock, status says so and backfill
	// exits 75.
	lock, err := h.store.TryLock(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(context.Background())
	code, out, _ = h.run("status", "--format", "json")
	var st struct {
		Version int `json:"version"`
		Lock    struct {
			Held bool `json:"held"`
			PID  int  `json:"pid"`
		} `json:"lock"`
		Runs []struct {
			Kind    string         `json:"kind"`
			Outcome string         `json:"outcome"`
			Counts  map[string]int `json:"counts"`
			Rejects []struct {
				ExternalID string `json:"external_id"`
				Column     string `json:"column"`
				Reason     string `json:"reason"`
			} `json:"rejects"`
		} `json:"runs"`
	}
	if err := unmarshalStatus(out, &st); err != nil || code != 0 {
		t.Fatalf("status --format json exited %d: %v\n%s", code, err, out)
	}
	if !st.Lock.Held || st.Lock.PID != lock.BackendPID() {
		t.Errorf("lock = %+v, want held by backend %d", st.Lock, lock.BackendPID())
	}
	if len(st.Runs) != 1 || st.Runs[0].Counts["create"] != 2 || st.Runs[0].Counts["rejected"] != 1 || len(st.Runs[0].Rejects) != 1 {
		t.Fatalf("runs = %+v", st.Runs)
	}
	// The shape of diff's rejects.
	if rej := st.Runs[0].Rejects[0]; rej.ExternalID != "crm-0002" || rej.Column != "phone" || !strings.Contains(rej.Reason, "is not a phone number") {
		t.Errorf("reject = %+v, want crm-0002's phone with its reason", rej)
	}
	// A backfill while another full run goes on exits 75, naming its holder.
	full, err := h.store.TryLockFullRun(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer full.Release(context.Background())
	code, _, errOut = h.run("backfill")
	if code != exitTempFail || !strings.Contains(errOut, "locked by backend pid") {
		t.Errorf("backfill during another full run exited %d (%q), want 75 naming the holder", code, errOut)
	}
}

func TestBackfillWaitsForTheLock(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(3))
	lock, err := h.store.TryLock(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		code, _, _ := h.run("backfill", "--wait")
		done <- code
	}()
	// The waiting backfill shows up as a second session asking for the lock.
	eventually(t, "backfill --wait queues for the lock", func() bool {
		var waiting int64
		h.store.DB().Raw("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&waiting)
		return waiting > 0
	})
	if len(h.emu.Contacts()) != 0 {
		t.Fatal("backfill ran while another session held the lock")
	}
	if err := lock.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("backfill --wait exited %d", code)
	}
	if n := len(h.emu.Contacts()); n != 3 {
		t.Errorf("%d contacts after the wait, want 3", n)
	}
}

// A run under way shows how long it has run so far; times carry their zone.
func TestStatusOfARunningRun(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	ctx := context.Background()
	if _, err := h.store.StartRun(ctx, "p1", "full"); err != nil {
		t.Fatal(err)
	}
	if err := h.store.DB().Exec(`UPDATE syncd.runs SET started_at = now() - interval '90 seconds'`).Error; err != nil {
		t.Fatal(err)
	}
	code, out, errOut := h.run("status")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`running`).MatchString(out) || !regexp.MustCompile(`1m3\d\.\d+s so far`).MatchString(out) {
		t.Errorf("status of a running run lacks its elapsed time:\n%s", out)
	}
	if !regexp.MustCompile(`\d\d:\d\d:\d\d [+-]\d\d:\d\d`).MatchString(out) {
		t.Errorf("status shows a time without its zone:\n%s", out)
	}
	code, out, _ = h.run("status", "--format", "json")
	var st struct {
		Runs []struct {
			DurationMS int64 `json:"duration_ms"`
		} `json:"runs"`
	}
	if err := unmarshalStatus(out, &st); err != nil || code != 0 || len(st.Runs) != 1 {
		t.Fatalf("status --format json exited %d: %v\n%s", code, err, out)
	}
	if d := time.Duration(st.Runs[0].DurationMS) * time.Millisecond; d < 90*time.Second || d > time.Hour {
		t.Errorf("duration_ms of the running run = %v, want its elapsed time", d)
	}
}

// With several projects status shows each, one section each, and in JSON a
// list; --project picks one.
func TestStatusOfSeveralProjects(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.twoProjects("")
	h.load(crmRows(3))
	h.setRegion("eu", "crm-0001")
	h.setRegion("us", "crm-0002", "crm-0003")
	if code, out, errOut := h.run("--project", "us", "backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	lock, err := h.store.TryLock(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(context.Background())

	code, out, errOut := h.run("status")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	eu, us, ok := strings.Cut(out, "== us ==")
	if !ok || !strings.HasPrefix(eu, "== eu ==\nProject p1: a syncd is running a sync now") || !strings.Contains(eu, "No runs yet.") {
		t.Errorf("status lacks eu's section, locked and without runs, then us's:\n%s", out)
	}
	if !strings.Contains(us, "Project p2: no sync running now.") || !strings.Contains(us, "succeeded") {
		t.Errorf("status lacks us's section with its run:\n%s", out)
	}

	type report struct {
		Project   string `json:"project"`
		ProjectID string `json:"project_id"`
		Lock      struct {
			Held bool `json:"held"`
		} `json:"lock"`
		Runs []struct {
			Counts map[string]int `json:"counts"`
		} `json:"runs"`
	}
	code, out, _ = h.run("status", "--format", "json")
	var doc struct {
		Version  int      `json:"version"`
		Projects []report `json:"projects"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || doc.Version != 1 {
		t.Fatalf("status --format json exited %d: %v\n%s", code, err, out)
	}
	all := doc.Projects
	if len(all) != 2 || all[0].Project != "eu" || all[0].ProjectID != "p1" || !all[0].Lock.Held || len(all[0].Runs) != 0 ||
		all[1].Project != "us" || all[1].ProjectID != "p2" || all[1].Lock.Held || len(all[1].Runs) != 1 || all[1].Runs[0].Counts["create"] != 2 {
		t.Errorf("status --format json = %+v", all)
	}

	// One project, picked by --project: the same shape, a list of one.
	code, out, _ = h.run("--project", "us", "status", "--format", "json")
	var one report
	if err := unmarshalStatus(out, &one); err != nil || code != 0 || one.Project != "us" || one.ProjectID != "p2" {
		t.Errorf("status --project us --format json exited %d: %v\n%s", code, err, out)
	}
}

// unmarshalStatus decodes status --format json of one project into v: the
// document is {"version": 1, "projects": [v]}.
func unmarshalStatus(out string, v any) error {
	var doc struct {
		Version  int               `json:"version"`
		Projects []json.RawMessage `json:"projects"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return err
	}
	if doc.Version != statusVersion || len(doc.Projects) != 1 {
		return fmt.Errorf("version %d and %d projects, want version %d and one", doc.Version, len(doc.Projects), statusVersion)
	}
	return json.Unmarshal(doc.Projects[0], v)
}

// What partial runs left to the next full run is shown, with why, in text
// and in JSON.
func TestStatusShowsWhatIsDeferred(t *testing.T) {
	h := newHarness(t)
	h.migrate()
	h.load(crmRows(2))
	if code, out, errOut := h.run("backfill"); code != 0 {
		t.Fatalf("backfill exited %d:\n%s%s", code, out, errOut)
	}
	if _, err := h.store.Defer(context.Background(), "p1", []state.Deferral{
		{Kind: state.DeferRecord, Key: "crm-0001", Reason: "its scope grew past 50 records and contacts (sync.scope_bound)"},
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := h.run("status")
	if code != 0 || !strings.Contains(out, "Left to the next full run: 1") || !strings.Contains(out, "record crm-0001: its scope grew past 50") {
		t.Errorf("status exited %d and says:\n%s%s", code, out, errOut)
	}
	code, out, _ = h.run("status", "--format", "json")
	var st struct {
		Projects []struct {
			Deferred struct {
				Queued int `json:"queued"`
				First  []struct {
					Kind, Key string
				} `json:"first"`
			} `json:"deferred"`
		} `json:"projects"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || len(st.Projects) != 1 ||
		st.Projects[0].Deferred.Queued != 1 || st.Projects[0].Deferred.First[0].Key != "crm-0001" {
		t.Errorf("status --format json exited %d (%v): %s", code, err, out)
	}
}

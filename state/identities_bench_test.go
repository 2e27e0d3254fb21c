package state_test

import (
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/state/statetest"
)

// BenchmarkIdentityIndex measures the index of the records' identities that
// partial runs grow their scopes with, at a million records of two keys
// each (a phone and an e-mail): its first build by a full run (one COPY),
// a later full run's update of 1% of the records, an incremental run's
// look-up of who holds 100 identities, and the prune of records gone from
// the source (a scan of the index against the source). Run it once:
// go test -run '^$' -bench IdentityIndex -benchtime 1x ./state/
func BenchmarkIdentityIndex(b *testing.B) {
	const n = 1_000_000
	keysOf := func(i, gen int) []string {
		return []string{fmt.Sprintf("email:person%d.%d@example.com", i, gen), fmt.Sprintf("tel:+4670%07d", i)}
	}
	all := func(yield func(string, []string) bool) {
		for i := range n {
			if !yield(fmt.Sprintf("crm-%07d", i), keysOf(i, 0)) {
				return
			}
		}
	}
	for range b.N {
		s := statetest.NewStore(b)
		ctx := ctxFor(b)
		mustExec(b, s, `ALTER TABLE crm_contacts DISABLE TRIGGER crm_contacts_notify`) // a load, not edits
		mustExec(b, s, `INSERT INTO crm_contacts (external_id, phone)
			SELECT 'crm-' || lpad(g::text, 7, '0'), '+4670' || lpad(g::text, 7, '0') FROM generate_series(0, ?) g`, n-1)
		mustExec(b, s, `VACUUM ANALYZE crm_contacts`)
		step := func(name string, fn func() error) {
			b.Helper()
			start := time.Now()
			if err := fn(); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), name+"-ms")
		}
		step("build", func() error { return s.BuildIdentities(ctx, "p", iter.Seq2[string, []string](all)) })
		mustExec(b, s, `VACUUM ANALYZE syncd.record_identities`)
		var size int64
		if err := s.SQL().QueryRowContext(ctx, `SELECT pg_total_relation_size('syncd.record_identities')`).Scan(&size); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(size)/(1<<20), "MiB")
		changed := make(map[string][]string, n/100)
		for i := 0; i < n; i += 100 {
			changed[fmt.Sprintf("crm-%07d", i)] = keysOf(i, 1)
		}
		step("update-1pct", func() error { return s.IndexIdentities(ctx, "p", changed) })
		var lookup []string
		for i := range 100 {
			lookup = append(lookup, keysOf(i*9973%n, 0)[1])
		}
		step("holding-100", func() error {
			hs, err := s.RecordsHolding(ctx, "p", lookup)
			if err == nil && len(hs) != 100 {
				err = fmt.Errorf("%d holders, want 100", len(hs))
			}
			return err
		})
		mustExec(b, s, `DELETE FROM crm_contacts WHERE external_id >= 'crm-0990000'`)
		step("prune", func() error { return s.PruneIdentities(ctx, "p", crm.Source{Relation: "crm_contacts"}) })
	}
}

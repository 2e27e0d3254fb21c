package crm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

const contacts = "public.crm_contacts"

func ptr[T any](v T) *T { return &v }

// ctxFor bounds a test's database work so a wedged server fails the test
// rather than hanging the binary.
func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// source is a migrated database as a test of the reader sees it: the
// Reader, and the state Store whose pool it reads over, through which tests
// write CRM rows, run SQL by hand and keep the links a read compares with.
type source struct {
	*crm.Reader
	state *state.Store
}

// newSource opens a source on a fresh database of the test's own.
func newSource(t testing.TB) source {
	t.Helper()
	return openSource(t, statetest.NewDatabase(t))
}

// openSource opens another source on an existing database, as a second
// process would.
func openSource(t testing.TB, url string) source {
	t.Helper()
	st := statetest.OpenStore(t, url)
	return source{Reader: crm.New(st.SQL()), state: st}
}

func (s source) UpsertRecords(ctx context.Context, table string, recs []crm.Record) error {
	return crm.UpsertRecords(ctx, s.state.SQL(), table, recs)
}

func (s source) DB() *gorm.DB { return s.state.DB() }

func mustExec(t testing.TB, s source, query string, args ...any) {
	t.Helper()
	if err := s.DB().WithContext(ctxFor(t)).Exec(query, args...).Error; err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
}

// seedRecords writes n minimal records with ids c-00000 … into the reference
// table, in an order unlike the id order so that sorting is the reader's
// job.
func seedRecords(t testing.TB, s source, n int) []string {
	t.Helper()
	recs := make([]crm.Record, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("c-%05d", i)
	}
	for i := range n {
		j := (i * 7919) % n // a permutation for any n not divisible by 7919
		recs[i] = crm.Record{ExternalID: ids[j], DisplayName: ptr("Contact " + ids[j]), Phone: ptr("+4670000" + fmt.Sprint(j))}
	}
	if err := s.UpsertRecords(ctxFor(t), contacts, recs); err != nil {
		t.Fatalf("seed %d records: %v", n, err)
	}
	return ids
}

// collect drains a record stream, failing the test on any error.
func collect(t testing.TB, seq func(func([]crm.Record, error) bool)) (recs []crm.Record, batches []int) {
	t.Helper()
	for batch, err := range seq {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		batches = append(batches, len(batch))
		recs = append(recs, batch...)
	}
	return recs, batches
}

func ids(recs []crm.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ExternalID
	}
	return out
}

package sync

import (
	"context"
	"iter"
	"sync/atomic"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// A scope is what one run reads into the index the planner diffs: the whole
// project for a full run (fullScope), or for a partial run the records and
// contacts around what changed, grown until it holds everything connected
// to them (partialScope). Whatever the scope, the same planner decides.
type scope interface {
	// read returns a new index holding what the scope covers.
	read(ctx context.Context) (*planner.Index, error)
}

// plan reads the scope and diffs it, reading in full the contacts the plan
// turns out to depend on (planner.Plan.Fetch), until it depends on none.
// It returns the plan, the index it was made from and the Sinch reads the
// scope and the loop made.
func (r *Reconciler) plan(ctx context.Context, s scope) (planner.Plan, *planner.Index, int, error) {
	var reads atomic.Int64
	ctx = withReads(ctx, &reads)
	idx, err := s.read(ctx)
	if err != nil {
		return planner.Plan{}, nil, int(reads.Load()), err
	}
	for {
		plan := planner.Diff(idx)
		if len(plan.Fetch) == 0 {
			return plan, idx, int(reads.Load()), nil
		}
		got, gone, err := r.getContacts(ctx, plan.Fetch)
		if err != nil {
			return planner.Plan{}, nil, int(reads.Load()), err
		}
		idx.AddContacts(got)
		idx.Forget(gone)
	}
}

type readsKey struct{}

// withReads makes ctx count the Sinch reads (readSinch) made with it.
func withReads(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, readsKey{}, n)
}

// counted is the Sinch client with the reads made through it counted in
// the counter ctx carries, for the report's look-ups.
type counted struct{ SinchAPI }

func (r *Reconciler) reader() counted { return counted{r.Sinch} }

func countRead(ctx context.Context, n int) {
	if c, ok := ctx.Value(readsKey{}).(*atomic.Int64); ok {
		c.Add(int64(n))
	}
}

func (c counted) GetContact(ctx context.Context, id string) (*sinch.Contact, error) {
	countRead(ctx, 1)
	return c.SinchAPI.GetContact(ctx, id)
}

func (c counted) FindByExternalID(ctx context.Context, externalID string) ([]sinch.Contact, error) {
	countRead(ctx, 1)
	return c.SinchAPI.FindByExternalID(ctx, externalID)
}

func (c counted) Pages(ctx context.Context, req sinch.ListContactsRequest) iter.Seq2[[]sinch.Contact, error] {
	return func(yield func([]sinch.Contact, error) bool) {
		for page, err := range c.SinchAPI.Pages(ctx, req) {
			countRead(ctx, 1)
			if !yield(page, err) {
				return
			}
		}
	}
}

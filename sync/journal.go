package sync

import (
	"context"
	stdsync "sync"

	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
)

// markBatcher is a Store that records many journal answers in one
// statement; *crm.Store is one.
type markBatcher interface {
	JournalMarks(ctx context.Context, marks []crm.JournalMark) error
}

// marker writes the journal marks of one Apply. With a store that batches,
// marks queue up while one batch is being written and go out together in
// the next, so that a run writes a statement per batch of answers rather
// than per answer; close waits for the last. Other stores are marked one
// entry at a time, as the answers come.
type marker struct {
	r     *Reconciler
	ctx   context.Context
	batch markBatcher

	mu      stdsync.Mutex
	queue   []crm.JournalMark
	kick    chan struct{}
	stopped chan struct{}
}

func (r *Reconciler) newMarker(ctx context.Context) *marker {
	m := &marker{r: r, ctx: ctx}
	if b, ok := r.Store.(markBatcher); ok {
		m.batch = b
		m.kick = make(chan struct{}, 1)
		m.stopped = make(chan struct{})
		go m.flushLoop()
	}
	return m
}

// mark records res as the answer of journal entry id.
func (m *marker) mark(id int64, res opResult) {
	if m.batch == nil {
		m.r.mark(m.ctx, id, res)
		return
	}
	jm := crm.JournalMark{ID: id, Status: res.status, HTTPStatus: res.httpStatus, ContactID: res.contactID}
	if res.err != nil {
		jm.Error = res.err.Error()
	}
	m.mu.Lock()
	m.queue = append(m.queue, jm)
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default: // a flush is already due
	}
}

// close writes what is queued and returns once every mark is stored (or
// has failed and been logged).
func (m *marker) close() {
	if m.batch == nil {
		return
	}
	close(m.kick)
	<-m.stopped
}

func (m *marker) flushLoop() {
	defer close(m.stopped)
	for range m.kick {
		m.flush()
	}
	m.flush()
}

func (m *marker) flush() {
	m.mu.Lock()
	marks := m.queue
	m.queue = nil
	m.mu.Unlock()
	if len(marks) == 0 {
		return
	}
	if err := m.batch.JournalMarks(m.ctx, marks); err != nil {
		m.r.Logger.Error("journal mark failed", zap.Int("entries", len(marks)), zap.Error(err))
	}
}

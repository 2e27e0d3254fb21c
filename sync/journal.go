package sync

import (
	"context"
	"fmt"
	stdsync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
)

// Journal is where a run journals its operations before it sends them,
// and marks Sinch's answers, many in one statement; and where an event run
// looks up what syncd's own writes left, to know their echoes without a
// read. *state.Store has it.
type Journal interface {
	JournalAppend(ctx context.Context, entries []state.JournalEntry) error
	JournalMarks(ctx context.Context, marks []state.JournalMark) error
	Answers(ctx context.Context, projectID string, hashes []string) ([]state.Answer, error)
	WrittenContacts(ctx context.Context, projectID string, ids []string, kinds ...planner.OpKind) ([]string, error)
	// TouchedSince is what other runs journaled since a time: what a full
	// run that began before must not act on any more (see revalidate).
	TouchedSince(ctx context.Context, projectID string, t time.Time, run int64) (state.Touched, error)
}

// marker writes the journal marks of one Apply in batches: marks queue up
// while one batch is being written and go out together in the next, so that
// a run writes a statement per batch of answers rather than per answer.
// A batch that cannot be written is tried again; one that never could be
// makes close report it, so that the run does not end succeeded with
// answers it did not record (the next run closes what stays open as
// unknown, and reads Sinch afresh).
type marker struct {
	r   *Reconciler
	ctx context.Context

	mu      stdsync.Mutex
	queue   []state.JournalMark
	lost    int // marks that could not be written
	lastErr error
	kick    chan struct{}
	stopped chan struct{}
}

// Retrying a batch of marks: as long as a connection cut mid-run takes to
// come back, not as long as the run.
const (
	markAttempts   = 8
	markFirstPause = 100 * time.Millisecond
	markMaxPause   = 2 * time.Second
)

func (r *Reconciler) newMarker(ctx context.Context) *marker {
	m := &marker{r: r, ctx: ctx, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	go m.flushLoop()
	return m
}

// mark records res as the answer of journal entry id, with the hash of
// the contact Sinch answered a write with: its callback carries that
// contact, and the event run knows it for syncd's own echo by it.
func (m *marker) mark(id int64, res opResult) {
	jm := state.JournalMark{ID: id, Status: res.status, HTTPStatus: res.httpStatus, ContactID: res.contactID}
	if res.err != nil {
		jm.Error = res.err.Error()
	}
	if res.status == state.StatusDone && res.answer != nil {
		jm.AnswerHash = planner.ContactHash(*res.answer)
	}
	m.mu.Lock()
	m.queue = append(m.queue, jm)
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default: // a flush is already due
	}
}

// close writes what is queued and returns once every mark is stored, or
// says how many could not be.
func (m *marker) close() error {
	close(m.kick)
	<-m.stopped
	if m.lost > 0 {
		return fmt.Errorf("the journal could not record Sinch's answers to %d operations: %w", m.lost, m.lastErr)
	}
	return nil
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
	pause := markFirstPause
	for attempt := 1; ; attempt++ {
		err := m.r.Journal.JournalMarks(m.ctx, marks)
		if err == nil {
			return
		}
		if attempt == markAttempts || m.ctx.Err() != nil {
			m.r.Logger.Error("journal marks failed; the run cannot vouch for these operations", zap.Int("entries", len(marks)), zap.Error(err))
			m.lost += len(marks)
			m.lastErr = err
			return
		}
		m.r.Logger.Warn("journal marks failed; trying again", zap.Int("entries", len(marks)), zap.Int("attempt", attempt), zap.Error(err))
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-m.ctx.Done():
			t.Stop()
		}
		pause = min(2*pause, markMaxPause)
	}
}

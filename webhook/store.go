package webhook

import (
	"context"
	"time"
)

// NonceRetention is how long a verified callback's nonce is kept: a
// callback whose timestamp is further from now than MaxSkew is refused
// anyway, so twice that covers a clock that jumps.
const NonceRetention = 2 * MaxSkew

// EventStore makes verified callbacks durable, once each; state.Events is
// syncd's. Its methods must be safe for concurrent use.
type EventStore interface {
	// SaveCallbacks stores the callbacks of one project together (one
	// commit for many) and says, for each, what came of it.
	SaveCallbacks(ctx context.Context, projectID string, cbs []Callback) ([]Saved, error)
	// PruneNonces forgets the nonces seen more than age ago: a callback
	// signed that long ago is refused by its timestamp anyway.
	PruneNonces(ctx context.Context, age time.Duration) error
}

// Callback is a verified callback on its way into an EventStore.
type Callback struct {
	Nonce string // its signature's nonce: a nonce seen before is a replay
	Key   string // EventKey of its body: an event stored before is a duplicate
	Event Event
	Body  []byte
}

// Saved is what storing one callback came to.
type Saved int

const (
	Stored    Saved = iota // a new event, stored
	Duplicate              // an event stored before, sent again: not stored twice
	Replayed               // a nonce seen before: nothing stored (ErrReplay)
)

// Store is a Handler's way into an EventStore: it hands each batch of
// receipts over as Callbacks and gives each receipt its answer.
type Store struct {
	events EventStore
}

// NewStore lets a Handler store into events.
func NewStore(events EventStore) *Store { return &Store{events: events} }

// receipt is one verified callback waiting for the store.
type receipt struct {
	nonce     string
	key       string
	event     Event
	body      []byte
	done      chan struct{} // closed once err and duplicate are set
	err       error         // nil: stored (or a duplicate); ErrReplay; or the store's error
	duplicate bool
}

// save stores the receipts of one project, setting duplicate on each that
// was; the errors are ErrReplay for a replay, nil otherwise.
func (s *Store) save(ctx context.Context, projectID string, rs []*receipt) ([]error, error) {
	cbs := make([]Callback, len(rs))
	for i, r := range rs {
		cbs[i] = Callback{Nonce: r.nonce, Key: r.key, Event: r.event, Body: r.body}
	}
	saved, err := s.events.SaveCallbacks(ctx, projectID, cbs)
	if err != nil {
		return nil, err
	}
	results := make([]error, len(rs))
	for i, r := range rs {
		switch saved[i] {
		case Replayed:
			results[i] = ErrReplay
		case Duplicate:
			r.duplicate = true
		}
	}
	return results, nil
}

// PruneNonces forgets old nonces; see EventStore.
func (s *Store) PruneNonces(ctx context.Context, age time.Duration) error {
	return s.events.PruneNonces(ctx, age)
}

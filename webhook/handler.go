package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	stdsync "sync"
	"time"

	"go.uber.org/zap"
)

// MaxBody is the largest callback body accepted.
const MaxBody = 1 << 20

// Observer is told about callbacks, for metrics. Its methods must be cheap
// and safe for concurrent use.
type Observer interface {
	// CallbackReceived is a verified contact event, stored or (duplicate)
	// found stored already.
	CallbackReceived(trigger string, duplicate bool)
	// CallbackRefused is a callback that was not stored, by Refusal reason.
	CallbackRefused(reason string)
}

// Config is what a Handler needs.
type Config struct {
	// Secret is the webhook's secret; a callback not signed with it is
	// refused.
	Secret string
	// ProjectID is the Sinch project whose events are stored; events of
	// another project are answered and dropped.
	ProjectID string
	Store     *Store
	Logger    *zap.Logger
	Observer  Observer // optional
	// Now is the clock signature timestamps are checked against; time.Now
	// when nil.
	Now func() time.Time
	// OnStored, when set, is called after new events are stored, to wake
	// whatever processes them. It must not block.
	OnStored func()
}

// Handler answers Sinch's callbacks: a verified contact event is stored
// before the answer, so a 200 means durable. Stores are batched: the
// callbacks that arrive while a transaction commits go together in the next
// one, which is what a receiver at thousands of callbacks a second needs.
// Run must be running for callbacks to be stored; without it they are
// answered 503, and Sinch sends them again.
type Handler struct {
	cfg   Config
	queue chan *receipt
	done  chan struct{} // closed when Run has returned
	once  stdsync.Once
}

// writers are the transactions in flight at once; batch bounds one.
const (
	writers  = 4
	maxBatch = 256
)

// NewHandler builds a handler; call Run to let it store.
func NewHandler(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Handler{cfg: cfg, queue: make(chan *receipt, writers*maxBatch), done: make(chan struct{})}
}

type nopObserver struct{}

func (nopObserver) CallbackReceived(string, bool) {}
func (nopObserver) CallbackRefused(string)        {}

// Run stores callbacks until ctx ends, and forgets old nonces now and then.
// A transaction under way when ctx ends is finished.
func (h *Handler) Run(ctx context.Context) {
	defer h.once.Do(func() { close(h.done) })
	var wg stdsync.WaitGroup
	for range writers {
		wg.Go(func() { h.write(ctx) })
	}
	wg.Go(func() { h.prune(ctx) })
	wg.Wait()
}

func (h *Handler) write(ctx context.Context) {
	for {
		var first *receipt
		select {
		case <-ctx.Done():
			return
		case first = <-h.queue:
		}
		batch := []*receipt{first}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-h.queue:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		results, err := h.cfg.Store.save(saveCtx, h.cfg.ProjectID, batch)
		cancel()
		stored := false
		for i, r := range batch {
			if err != nil {
				r.err = err
			} else {
				r.err = results[i]
				stored = stored || (r.err == nil && !r.duplicate)
			}
			close(r.done)
		}
		if err != nil {
			h.cfg.Logger.Error("cannot store webhook events; answering 503 so that Sinch sends them again", zap.Error(err), zap.Int("callbacks", len(batch)))
		}
		if stored && h.cfg.OnStored != nil {
			h.cfg.OnStored()
		}
	}
}

// pruneEvery is how often nonces past twice the skew are forgotten.
const pruneEvery = time.Minute

func (h *Handler) prune(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := h.cfg.Store.PruneNonces(ctx, 2*MaxSkew); err != nil && ctx.Err() == nil {
				h.cfg.Logger.Warn("prune webhook nonces", zap.Error(err))
			}
		}
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	sig, err := ParseSignature(r.Header)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.refuse(w, r, ErrTooLarge)
			return
		}
		h.refuse(w, r, &Refusal{ReasonBadPayload, http.StatusBadRequest, "the callback's body could not be read"})
		return
	}
	if err := sig.Verify([]byte(h.cfg.Secret), body, h.cfg.Now()); err != nil {
		h.refuse(w, r, err)
		return
	}
	ev, err := ParseEvent(body)
	if errors.Is(err, ErrNotContactEvent) {
		h.cfg.Logger.Debug("webhook callback without a contact event; dropped")
		answer(w, http.StatusOK)
		return
	}
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if ev.ProjectID != h.cfg.ProjectID {
		// Answered, since sending it again would not make it ours.
		h.cfg.Observer.CallbackRefused(ReasonOtherProject)
		h.cfg.Logger.Warn("webhook event of another Sinch project; dropped (check the webhook's app and sinch.project_id)",
			zap.String("event_project_id", ev.ProjectID))
		answer(w, http.StatusOK)
		return
	}
	rc := &receipt{nonce: sig.Nonce, key: EventKey(body), event: ev, body: body, done: make(chan struct{})}
	select {
	case h.queue <- rc:
	case <-h.done:
		h.refuse(w, r, errUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	select {
	case <-rc.done:
	case <-h.done:
		// Run ended with this one still queued.
		select {
		case <-rc.done:
		default:
			h.refuse(w, r, errUnavailable)
			return
		}
	case <-r.Context().Done():
		return
	}
	if rc.err != nil {
		if errors.Is(rc.err, ErrReplay) {
			h.refuse(w, r, rc.err)
		} else {
			h.refuse(w, r, errUnavailable)
		}
		return
	}
	h.cfg.Observer.CallbackReceived(ev.Trigger, rc.duplicate)
	answer(w, http.StatusOK)
}

var errUnavailable = &Refusal{ReasonUnavailable, http.StatusServiceUnavailable, "the event could not be stored"}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	ref := errUnavailable
	if !errors.As(err, &ref) {
		ref = errUnavailable
	}
	h.cfg.Observer.CallbackRefused(ref.Reason)
	h.cfg.Logger.Info("webhook callback refused", zap.String("reason", ref.Reason), zap.Int("status", ref.Status),
		zap.String("remote", r.RemoteAddr), zap.Error(err))
	http.Error(w, http.StatusText(ref.Status), ref.Status)
}

func answer(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "{}\n")
}

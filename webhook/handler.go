package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	stdsync "sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// MaxBody is the largest callback body accepted.
const MaxBody = 1 << 20

// Defaults of Config's bounds. Sinch's callbacks are a few kilobytes and
// come a few at a time; what holds more, or longer, is most likely not
// Sinch. At the defaults a handler holds at most 32 MiB of bodies,
// whoever sends them.
const (
	DefaultMaxInFlight = 32
	DefaultBodyTimeout = 5 * time.Second
)

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
	// MaxInFlight bounds the callbacks read, verified and stored at once
	// (DefaultMaxInFlight when 0). Each holds at most MaxBody, so it bounds
	// the memory unauthenticated clients can make the handler hold, since
	// a signature can only be checked once the whole body is in. A callback
	// past it is answered 503 at once, before its body is read, and Sinch
	// sends it again.
	MaxInFlight int
	// BodyTimeout is how long a callback's body may take to arrive after
	// its headers (DefaultBodyTimeout when 0); a slower one is refused.
	BodyTimeout time.Duration
}

// Handler answers Sinch's callbacks: a verified contact event is stored
// before the answer, so a 200 means durable. Stores are batched: the
// callbacks that arrive while a transaction commits go together in the next
// one, which is what a receiver at thousands of callbacks a second needs.
// Run must be running for callbacks to be stored; without it they are
// answered 503, and Sinch sends them again.
type Handler struct {
	cfg  Config
	gate gate
	// refusals logs refused callbacks, sampled: a flood of forged ones
	// must not become a flood of log lines (/metrics counts them all).
	refusals *zap.Logger
	queue    chan *receipt
	done     chan struct{} // closed when Run has returned
	once     stdsync.Once
}

// writers are the transactions in flight at once; batch bounds one;
// storeTimeout bounds one.
const (
	writers      = 4
	maxBatch     = 256
	storeTimeout = 10 * time.Second
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
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	return &Handler{
		cfg: cfg, gate: make(gate, cfg.MaxInFlight),
		refusals: cfg.Logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, 10, 100)
		})),
		queue: make(chan *receipt, writers*maxBatch), done: make(chan struct{}),
	}
}

// InFlight is how many callbacks are being read, verified or stored now,
// out of Config.MaxInFlight.
func (h *Handler) InFlight() int { return len(h.gate) }

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
		saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
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

// ServeHTTP checks what it can before it reads a byte of the body: the
// method, the signature headers, their timestamp, the declared length, and
// a free place among MaxInFlight. A callback refused then closes its
// connection, its body unread. Only then is the body read, within
// BodyTimeout, and verified.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The deadline also covers what net/http reads of an unread body after
	// a refusal, and a refusal's answer.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.BodyTimeout))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuseUnread(w, r, &Refusal{"", http.StatusMethodNotAllowed, "use POST"})
		return
	}
	sig, err := ParseSignature(r.Header)
	if err == nil {
		err = sig.CheckTime(h.cfg.Now())
	}
	if err == nil && r.ContentLength > MaxBody {
		err = ErrTooLarge
	}
	if err == nil && !h.gate.enter() {
		err = ErrBusy
	}
	if err != nil {
		h.refuseUnread(w, r, err)
		return
	}
	defer h.gate.leave()
	body, err := readBody(w, r)
	if err != nil {
		h.refuse(w, r, err)
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

// readBody reads the body of a callback whose length is within MaxBody, into
// a buffer of the length it declares (so that reading it allocates once),
// or growing up to MaxBody when it declares none.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var body []byte
	var err error
	if n := r.ContentLength; n >= 0 {
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	}
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		return body, nil
	case errors.As(err, &tooLarge):
		return nil, ErrTooLarge
	case errors.As(err, &netErr) && netErr.Timeout():
		return nil, fmt.Errorf("%w: %w", ErrSlowBody, err)
	}
	return nil, fmt.Errorf("%w: %w", &Refusal{ReasonBadPayload, http.StatusBadRequest, "the callback's body could not be read"}, err)
}

// refuseUnread refuses a callback whose body was not read, and closes the
// connection rather than read the body to keep it: a client that sends
// what is refused is not worth the bytes.
func (h *Handler) refuseUnread(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	if errors.Is(err, ErrBusy) {
		// Sinch retries on its own schedule; another client may honour it.
		w.Header().Set("Retry-After", "1")
	}
	h.refuse(w, r, err)
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	ref := errUnavailable
	if !errors.As(err, &ref) {
		ref = errUnavailable
	}
	if ref.Reason != "" { // not a callback at all (a GET) otherwise
		h.cfg.Observer.CallbackRefused(ref.Reason)
		h.refusals.Info("webhook callback refused", zap.String("reason", ref.Reason), zap.Int("status", ref.Status),
			zap.String("remote", r.RemoteAddr), zap.Error(err))
	}
	http.Error(w, http.StatusText(ref.Status), ref.Status)
}

func answer(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "{}\n")
}

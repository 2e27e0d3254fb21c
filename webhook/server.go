package webhook

import (
	"net/http"
	"time"
)

// The listener's own bounds, for what reaches it before any handler: the
// request line and headers. Sinch's callback headers are a few hundred
// bytes and a reverse proxy adds a few more, so both are far below what a
// slow or bloated client could otherwise make it hold.
const (
	// MaxHeaderBytes bounds a request's line and headers (net/http adds
	// 4 KiB of slack).
	MaxHeaderBytes = 8 << 10
	// HeaderTimeout is how long the request line and headers may take.
	HeaderTimeout = 5 * time.Second
	// IdleTimeout is how long a kept-alive connection may wait for its
	// next request.
	IdleTimeout = 30 * time.Second
)

// NewServer is the http.Server of a webhook listener: h (a Handler, or a
// mux of them) behind the bounds above. Each Handler bounds the rest: how
// many callbacks it reads at once (Config.MaxInFlight), for how long
// (Config.BodyTimeout), how large (MaxBody). bodyTimeout is the longest of
// its handlers' (DefaultBodyTimeout when 0): the read deadline of what no
// Handler answers (a path nobody serves), and, with the store's ten
// seconds, part of the time an answer may take.
func NewServer(h http.Handler, bodyTimeout time.Duration) *http.Server {
	if bodyTimeout <= 0 {
		bodyTimeout = DefaultBodyTimeout
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       HeaderTimeout + bodyTimeout,
		WriteTimeout:      bodyTimeout + storeTimeout + 5*time.Second,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// gate admits at most n callbacks at once. A callback it cannot admit is
// refused at once rather than queued: a queue would hold the connections
// (and what they send) that the bound is there to refuse.
type gate chan struct{}

func (g gate) enter() bool {
	select {
	case g <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g gate) leave() { <-g }

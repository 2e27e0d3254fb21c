package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/syncd/syncd/webhook"
)

// serveWebhooks serves the webhook.listen addresses of the projects for
// `syncd run`: Sinch's contact callbacks, verified and stored before they
// are answered, each project on its own webhook.path (projects may share an
// address). A stored callback wakes the project's event runs. stop stops
// taking callbacks, lets those under way finish, and then stops storing.
func (e *env) serveWebhooks(ctx context.Context, projects []*projectRun) (stop func(), err error) {
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	muxes := map[string]*http.ServeMux{}
	var addrs []string
	var handlers []*webhook.Handler
	for _, p := range projects {
		cfg := p.d.cfg.Webhook
		if cfg.Listen == "" {
			continue
		}
		mux := muxes[cfg.Listen]
		if mux == nil {
			mux = http.NewServeMux()
			muxes[cfg.Listen] = mux
			addrs = append(addrs, cfg.Listen)
		}
		h := webhook.NewHandler(webhook.Config{
			Secret: cfg.Secret, ProjectID: p.d.cfg.Sinch.ProjectID, Store: p.events,
			Logger: p.d.log.Named("webhook"), Observer: p.d.metrics, OnStored: p.wake,
		})
		mux.Handle(cfg.Path, h)
		handlers = append(handlers, h)
	}
	if len(handlers) == 0 {
		return func() {}, nil
	}
	storeCtx, stopStoring := context.WithCancel(context.WithoutCancel(ctx))
	stored := make(chan struct{}, len(handlers))
	for _, h := range handlers {
		go func() { defer func() { stored <- struct{}{} }(); h.Run(storeCtx) }()
	}
	// Storing stops last, once no listener takes callbacks.
	stops = append(stops, func() {
		stopStoring()
		for range handlers {
			<-stored
		}
	})
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("webhook.listen: %w", err)
		}
		// It faces the internet (through a proxy): slow clients are cut off.
		srv := &http.Server{
			Handler:           muxes[addr],
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			MaxHeaderBytes:    64 << 10,
		}
		serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
		served := make(chan error, 1)
		go func() { served <- serveUntilDone(serveCtx, srv, ln) }()
		stops = append(stops, func() { stopServing(); <-served })
		if e.webhookReady != nil {
			e.webhookReady(ln.Addr().String())
		}
	}
	return stopAll, nil
}

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/syncd/syncd/webhook"
)

// serveWebhook serves webhook.listen for `syncd run`: Sinch's contact
// callbacks, verified and stored before they are answered. onStored is
// told when new events are in. It returns at once when webhook.listen is
// empty. stop stops taking callbacks, lets those under way finish, and
// then stops storing.
func (e *env) serveWebhook(ctx context.Context, d *deps, events *webhook.Store, onStored func()) (stop func(), err error) {
	cfg := d.cfg.Webhook
	if cfg.Listen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("webhook.listen: %w", err)
	}
	h := webhook.NewHandler(webhook.Config{
		Secret: cfg.Secret, ProjectID: d.cfg.Sinch.ProjectID, Store: events,
		Logger: d.log.Named("webhook"), Observer: d.metrics, OnStored: onStored,
	})
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, h)
	// It faces the internet (through a proxy): slow clients are cut off.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	storeCtx, stopStoring := context.WithCancel(context.WithoutCancel(ctx))
	stored := make(chan struct{})
	go func() { defer close(stored); h.Run(storeCtx) }()
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- serveUntilDone(serveCtx, srv, ln) }()
	if e.webhookReady != nil {
		e.webhookReady(ln.Addr().String())
	}
	return func() {
		stopServing()
		<-served
		stopStoring()
		<-stored
	}, nil
}

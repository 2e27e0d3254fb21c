package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/syncd/syncd/crm"
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
	stop = serveWebhookOn(ctx, d, ln, events, onStored)
	if e.webhookReady != nil {
		e.webhookReady(ln.Addr().String())
	}
	return stop, nil
}

// serveWebhookOn serves the webhook on ln, as serveWebhook does.
func serveWebhookOn(ctx context.Context, d *deps, ln net.Listener, events *webhook.Store, onStored func()) (stop func()) {
	cfg := d.cfg.Webhook
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
	return func() {
		stopServing()
		<-served
		stopStoring()
		<-stored
	}
}

// listenForWakes LISTENs, on one connection, for what wakes a run of
// `syncd run`: with crm.notify, the CRM's changes (onChange gets each
// payload); with webhook.listen, the events of this project stored by any
// syncd (onStored). The second is how the process holding the project lock
// hears of callbacks another one received, behind the same load balancer or
// as a standby, at once rather than after its next run. ready is called
// once the LISTENs are in place; after a lost connection both are told, as
// something may have been missed. It returns when ctx ends.
func listenForWakes(ctx context.Context, d *deps, ready, onStored func(), onChange func(payload string)) error {
	var channels []string
	if d.cfg.CRM.Notify {
		channels = append(channels, crm.NotifyChannel)
	}
	if d.cfg.Webhook.Listen != "" {
		channels = append(channels, webhook.NotifyChannel)
	}
	return d.store.Listen(ctx, channels, ready, func(channel, payload string) {
		switch channel {
		case crm.NotifyChannel:
			onChange(payload)
		case webhook.NotifyChannel:
			// Another project's events are its own syncd's to process.
			if payload == "" || payload == d.cfg.Sinch.ProjectID {
				onStored()
			}
		}
	})
}

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/state"
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
	byAddr := map[string][]webhookTarget{}
	var addrs []string
	for _, p := range projects {
		addr := p.d.cfg.Webhook.Listen
		if addr == "" {
			continue
		}
		if byAddr[addr] == nil {
			addrs = append(addrs, addr)
		}
		byAddr[addr] = append(byAddr[addr], webhookTarget{d: p.d, events: p.events, onStored: p.wake})
	}
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("webhook.listen: %w", err)
		}
		stops = append(stops, serveWebhooksOn(ctx, ln, byAddr[addr]))
		if e.webhookReady != nil {
			e.webhookReady(ln.Addr().String())
		}
	}
	return stopAll, nil
}

// webhookTarget is a project whose callbacks a listener takes: they are
// stored in events, and onStored (if set) is told.
type webhookTarget struct {
	d        *deps
	events   *state.Events
	onStored func()
}

// serveWebhookOn serves one project's webhook on ln.
func serveWebhookOn(ctx context.Context, d *deps, ln net.Listener, events *state.Events, onStored func()) (stop func()) {
	return serveWebhooksOn(ctx, ln, []webhookTarget{{d: d, events: events, onStored: onStored}})
}

// serveWebhooksOn serves on ln the webhooks of the targets, each on its
// webhook.path, within its webhook.max_in_flight and webhook.body_timeout.
func serveWebhooksOn(ctx context.Context, ln net.Listener, targets []webhookTarget) (stop func()) {
	mux := http.NewServeMux()
	var handlers []*webhook.Handler
	var bodyTimeout time.Duration
	for _, t := range targets {
		cfg := t.d.cfg.Webhook
		h := webhook.NewHandler(webhook.Config{
			Secret: cfg.Secret, ProjectID: t.d.cfg.Sinch.ProjectID, Store: webhook.NewStore(t.events),
			Logger: t.d.log.Named("webhook"), Observer: t.d.metrics, OnStored: t.onStored,
			MaxInFlight: cfg.MaxInFlight, BodyTimeout: cfg.BodyTimeout,
		})
		mux.Handle(cfg.Path, h)
		handlers = append(handlers, h)
		bodyTimeout = max(bodyTimeout, cfg.BodyTimeout)
	}
	// It faces the internet (through a proxy): see webhook.NewServer.
	srv := webhook.NewServer(mux, bodyTimeout)
	storeCtx, stopStoring := context.WithCancel(context.WithoutCancel(ctx))
	stored := make(chan struct{}, len(handlers))
	for _, h := range handlers {
		go func() { defer func() { stored <- struct{}{} }(); h.Run(storeCtx) }()
	}
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- serveUntilDone(serveCtx, srv, ln) }()
	return func() {
		stopServing()
		<-served
		// Storing stops last, once the listener takes no more callbacks.
		stopStoring()
		for range handlers {
			<-stored
		}
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
		channels = append(channels, state.EventsChannel)
	}
	return d.store.Listen(ctx, channels, ready, func(channel, payload string) {
		switch channel {
		case crm.NotifyChannel:
			onChange(payload)
		case state.EventsChannel:
			// Another project's events are its own syncd's to process.
			if payload == "" || payload == d.cfg.Sinch.ProjectID {
				onStored()
			}
		}
	})
}

package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
)

// NotifyChannel is the channel the crm_contacts trigger notifies, with the
// change as payload (see ParseChange; "" when it cannot say which).
const NotifyChannel = "syncd_crm_changed"

// Listen LISTENs on NotifyChannel on a connection of its own and calls
// onChange with each payload until ctx ends. ready is called each time the
// LISTEN is in place. After a lost connection it reconnects with backoff and
// calls onChange("") once, since notifications sent meanwhile are gone.
func (s *Store) Listen(ctx context.Context, ready func(), onChange func(payload string)) error {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			onChange("")
		}
		err := s.listenOnce(ctx, ready, onChange)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("crm change listener lost its connection; reconnecting", zap.Error(err), zap.Duration("in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, ready func(), onChange func(string)) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("crm: listener connection: %w", err)
	}
	defer discard(conn) // a connection that LISTENed must not go back to the pool
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
			return fmt.Errorf("crm: LISTEN: %w", err)
		}
		ready()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			onChange(n.Payload)
		}
	})
}

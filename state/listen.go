package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
)

// Listen LISTENs on channels (crm.NotifyChannel, EventsChannel), all on one
// connection of its own taken from the pool, and calls
// onNotify with each notification's channel and payload until ctx ends.
// ready is called each time the LISTENs are in place. After a lost
// connection it reconnects with backoff and calls onNotify(channel, "")
// once for each channel, since notifications sent meanwhile are gone.
func (s *Store) Listen(ctx context.Context, channels []string, ready func(), onNotify func(channel, payload string)) error {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			for _, ch := range channels {
				onNotify(ch, "")
			}
		}
		err := s.listenOnce(ctx, channels, ready, onNotify)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("change listener lost its connection; reconnecting", zap.Error(err), zap.Duration("in", backoff))
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

func (s *Store) listenOnce(ctx context.Context, channels []string, ready func(), onNotify func(string, string)) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("state: listener connection: %w", err)
	}
	defer discard(conn) // a connection that LISTENed must not go back to the pool
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		for _, ch := range channels {
			if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
				return fmt.Errorf("state: LISTEN %s: %w", ch, err)
			}
		}
		ready()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			onNotify(n.Channel, n.Payload)
		}
	})
}

// discard ends conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

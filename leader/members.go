package leader

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/syncd/syncd/lease"
)

// Member is a process taking part in the elections, as pg_stat_activity
// shows its election session.
type Member struct {
	PID             int    // backend pid of its election session
	ApplicationName string // syncd sets "syncd host=H pid=P"
	BackendStart    time.Time
	Leads           []string // the project ids it leads, in the order asked for
}

// Members lists the processes taking part in the elections and which of
// projects each leads, without taking part: syncd status and /readyz.
func Members(ctx context.Context, db *sql.DB, projects []string) ([]Member, error) {
	sessions, err := lease.InSpace(ctx, db, memberSpace)
	if err != nil {
		return nil, fmt.Errorf("leader: list members: %w", err)
	}
	out := make([]Member, len(sessions))
	for i, s := range sessions {
		out[i] = Member{PID: s.PID, ApplicationName: s.ApplicationName, BackendStart: s.BackendStart}
		for _, p := range projects {
			if s.Holds(Key(p)) {
				out[i].Leads = append(out[i].Leads, p)
			}
		}
	}
	return out, nil
}

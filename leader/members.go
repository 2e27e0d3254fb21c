package leader

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
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
	rows, err := db.QueryContext(ctx, `SELECT l.pid, l.objsubid, l.classid::int8, l.objid::int8,
			COALESCE(a.application_name, ''), a.backend_start
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.pid IN (SELECT pid FROM pg_locks
				WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = $1::int8::oid)
		ORDER BY a.backend_start, l.pid`, int64(memberSpace))
	if err != nil {
		return nil, fmt.Errorf("leader: list members: %w", err)
	}
	defer rows.Close()
	byKey := make(map[int64]string, len(projects))
	for _, p := range projects {
		byKey[Key(p)] = p
	}
	var out []Member
	index := map[int]int{}
	for rows.Next() {
		var pid, sub int
		var classID, objID int64
		var app string
		var start sql.NullTime
		if err := rows.Scan(&pid, &sub, &classID, &objID, &app, &start); err != nil {
			return nil, fmt.Errorf("leader: list members: %w", err)
		}
		i, ok := index[pid]
		if !ok {
			i = len(out)
			index[pid] = i
			out = append(out, Member{PID: pid, ApplicationName: app, BackendStart: start.Time})
		}
		if sub != 1 {
			continue
		}
		if p, ok := byKey[int64(uint64(classID)<<32|uint64(objID))]; ok {
			out[i].Leads = append(out[i].Leads, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("leader: list members: %w", err)
	}
	for i := range out {
		slices.SortFunc(out[i].Leads, func(a, b string) int {
			return slices.Index(projects, a) - slices.Index(projects, b)
		})
	}
	return out, nil
}

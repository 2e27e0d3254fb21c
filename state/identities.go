package state

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
)

// The index of the identities each live record holds (syncd.record_identities)
// and the queue of what partial runs deferred (syncd.deferred): what a
// partial run reads to grow its scope to every record sharing an identity
// with what it touches, without scanning the source.

// identityChunk bounds the external_ids of one statement.
const identityChunk = 5000

// RecordIdentities are the identity keys stored for each of the given
// records, by external_id; a record without any is absent.
func (s *Store) RecordIdentities(ctx context.Context, projectID string, externalIDs []string) (map[string][]string, error) {
	out := make(map[string][]string)
	for chunk := range slices.Chunk(externalIDs, identityChunk) {
		rows, err := s.db.QueryContext(ctx, `SELECT external_id, identity FROM syncd.record_identities
			WHERE project_id = $1 AND external_id = ANY($2) ORDER BY external_id, identity`, projectID, chunk)
		if err != nil {
			return nil, fmt.Errorf("state: read record identities: %w", err)
		}
		for rows.Next() {
			var ext, key string
			if err := rows.Scan(&ext, &key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("state: read record identities: %w", err)
			}
			out[ext] = append(out[ext], key)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("state: read record identities: %w", err)
		}
	}
	return out, nil
}

// Holding is a record holding an identity key, as the index has it.
type Holding struct {
	ExternalID string
	Identity   string
}

// RecordsHolding are the records that hold any of the identity keys, with
// the key, in the order of external_id.
func (s *Store) RecordsHolding(ctx context.Context, projectID string, keys []string) ([]Holding, error) {
	var out []Holding
	for chunk := range slices.Chunk(keys, identityChunk) {
		rows, err := s.db.QueryContext(ctx, `SELECT external_id, identity FROM syncd.record_identities
			WHERE project_id = $1 AND identity = ANY($2)`, projectID, chunk)
		if err != nil {
			return nil, fmt.Errorf("state: find the records holding identities: %w", err)
		}
		for rows.Next() {
			var h Holding
			if err := rows.Scan(&h.ExternalID, &h.Identity); err != nil {
				rows.Close()
				return nil, fmt.Errorf("state: find the records holding identities: %w", err)
			}
			out = append(out, h)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("state: find the records holding identities: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b Holding) int {
		return cmp.Or(strings.Compare(a.ExternalID, b.ExternalID), strings.Compare(a.Identity, b.Identity))
	})
	return out, nil
}

// IndexIdentities replaces the stored identity keys of the given records
// with these: a record mapped to none (deleted, rejected, gone) is removed
// from the index.
func (s *Store) IndexIdentities(ctx context.Context, projectID string, keys map[string][]string) error {
	if len(keys) == 0 {
		return nil
	}
	exts := make([]string, 0, len(keys))
	for ext := range keys {
		exts = append(exts, ext)
	}
	slices.Sort(exts)
	return s.inTx(ctx, "index record identities", func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(exts, identityChunk) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM syncd.record_identities
				WHERE project_id = $1 AND external_id = ANY($2)`, projectID, chunk); err != nil {
				return err
			}
			var rowExts, rowKeys []string
			for _, ext := range chunk {
				for _, k := range keys[ext] {
					rowExts, rowKeys = append(rowExts, ext), append(rowKeys, k)
				}
			}
			if len(rowExts) == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO syncd.record_identities (project_id, external_id, identity)
				SELECT $1, e, k FROM unnest($2::text[], $3::text[]) AS t(e, k) ON CONFLICT DO NOTHING`,
				projectID, rowExts, rowKeys); err != nil {
				return err
			}
		}
		return nil
	})
}

// BuildIdentities replaces the project's whole index with the keys rows
// yields, each record's (none for a record not live), in one transaction
// and one COPY: a full run's first build writes every record's, a million
// at a time, with no statement per batch of them.
func (s *Store) BuildIdentities(ctx context.Context, projectID string, rows iter.Seq2[string, []string]) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("state: build the identity index: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, `DELETE FROM syncd.record_identities WHERE project_id = $1`, projectID); err != nil {
			return err
		}
		next, stop := iter.Pull2(rows)
		defer stop()
		var keys []string
		row := make([]any, 3)
		row[0] = projectID
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"syncd", "record_identities"}, []string{"project_id", "identity", "external_id"},
			pgx.CopyFromFunc(func() ([]any, error) {
				for len(keys) == 0 {
					ext, ks, ok := next()
					if !ok {
						return nil, nil
					}
					keys, row[2] = ks, ext // boxed once for all the record's keys
				}
				row[1] = keys[0]
				keys = keys[1:]
				return row, nil
			}))
		if err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return fmt.Errorf("state: build the identity index: %w", err)
	}
	return nil
}

// PruneIdentities removes the identities of records no longer in the source
// at all, as a full run finds them, and records that the project's index
// now holds every live record.
func (s *Store) PruneIdentities(ctx context.Context, projectID string, source crm.Source) error {
	rel, err := source.FromItem()
	if err != nil {
		return err
	}
	return s.inTx(ctx, "prune record identities", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM syncd.record_identities ri
			WHERE ri.project_id = $1 AND NOT EXISTS (SELECT 1 FROM `+rel+` WHERE src.external_id::text = ri.external_id)`,
			projectID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO syncd.identity_indexes (project_id, built_at) VALUES ($1, now())
			ON CONFLICT (project_id) DO UPDATE SET built_at = EXCLUDED.built_at`, projectID)
		return err
	})
}

// IdentitiesIndexed reports whether a full run has indexed every live
// record of the project.
func (s *Store) IdentitiesIndexed(ctx context.Context, projectID string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM syncd.identity_indexes WHERE project_id = $1`, projectID).Scan(&n); err != nil {
		return false, fmt.Errorf("state: read the identity index's state: %w", err)
	}
	return n > 0, nil
}

// LinksOf are the stored links of the given records, and LinksTo those
// naming the given contacts.
func (s *Store) LinksOf(ctx context.Context, projectID string, externalIDs []string) ([]planner.Link, error) {
	return s.linksWhere(ctx, projectID, "external_id", externalIDs)
}

// LinksTo are the stored links naming the given contacts.
func (s *Store) LinksTo(ctx context.Context, projectID string, contactIDs []string) ([]planner.Link, error) {
	return s.linksWhere(ctx, projectID, "contact_id", contactIDs)
}

func (s *Store) linksWhere(ctx context.Context, projectID, column string, values []string) ([]planner.Link, error) {
	var out []planner.Link
	for chunk := range slices.Chunk(values, identityChunk) {
		rows, err := s.db.QueryContext(ctx, `SELECT external_id, contact_id, content_hash, synced_at FROM syncd.links
			WHERE project_id = $1 AND `+column+` = ANY($2) ORDER BY external_id`, projectID, chunk)
		if err != nil {
			return nil, fmt.Errorf("state: read links: %w", err)
		}
		for rows.Next() {
			var l planner.Link
			if err := rows.Scan(&l.ExternalID, &l.ContactID, &l.ContentHash, &l.SyncedAt); err != nil {
				rows.Close()
				return nil, fmt.Errorf("state: read links: %w", err)
			}
			out = append(out, l)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("state: read links: %w", err)
		}
	}
	return out, nil
}

// CountLinks is how many links the project stores.
func (s *Store) CountLinks(ctx context.Context, projectID string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM syncd.links WHERE project_id = $1`, projectID).Scan(&n); err != nil {
		return 0, fmt.Errorf("state: count links: %w", err)
	}
	return n, nil
}

// Deferral is something a partial run could not decide and left to the
// next full run.
type Deferral struct {
	Kind       string // DeferRecord or DeferContact
	Key        string // the record's external_id, the contact's id
	Reason     string
	RunID      int64
	DeferredAt time.Time
}

// Deferral kinds.
const (
	DeferRecord  = "record"
	DeferContact = "contact"
)

// Defer queues deferrals for the next full run; it returns those that were
// not queued already, which a run notes (the others it noted before).
func (s *Store) Defer(ctx context.Context, projectID string, ds []Deferral) ([]Deferral, error) {
	var added []Deferral
	err := s.inTx(ctx, "queue deferrals", func(tx *sql.Tx) error {
		for _, d := range ds {
			res, err := tx.ExecContext(ctx, `INSERT INTO syncd.deferred (project_id, kind, key, reason, run_id)
				VALUES ($1, $2, $3, $4, NULLIF($5, 0)) ON CONFLICT DO NOTHING`, projectID, d.Kind, d.Key, d.Reason, d.RunID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added = append(added, d)
			}
		}
		return nil
	})
	return added, err
}

// Deferred lists what is queued for the next full run, oldest first; with
// keys, only those of the given kind and keys.
func (s *Store) Deferred(ctx context.Context, projectID, kind string, keys []string) ([]Deferral, error) {
	q := `SELECT kind, key, reason, COALESCE(run_id, 0), deferred_at FROM syncd.deferred WHERE project_id = $1`
	args := []any{projectID}
	if kind != "" {
		q += ` AND kind = $2 AND key = ANY($3)`
		args = append(args, kind, keys)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY deferred_at, kind, key`, args...)
	if err != nil {
		return nil, fmt.Errorf("state: read deferrals: %w", err)
	}
	defer rows.Close()
	var out []Deferral
	for rows.Next() {
		var d Deferral
		if err := rows.Scan(&d.Kind, &d.Key, &d.Reason, &d.RunID, &d.DeferredAt); err != nil {
			return nil, fmt.Errorf("state: read deferrals: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read deferrals: %w", err)
	}
	return out, nil
}

// ClearDeferred empties the queue of what was deferred before t: a full run
// that started reading at t has decided it.
func (s *Store) ClearDeferred(ctx context.Context, projectID string, t time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM syncd.deferred WHERE project_id = $1 AND deferred_at < $2`, projectID, t); err != nil {
		return fmt.Errorf("state: clear deferrals: %w", err)
	}
	return nil
}

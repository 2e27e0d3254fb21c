package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
)

// recreateDatabase drops and creates the named database, migrates it, and
// returns its URL and a function that drops it.
func recreateDatabase(ctx context.Context, name string) (string, func(), error) {
	admin := statetest.AdminURL()
	exec := func(stmt string) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("connect to %s: %w (set %s)", redactURL(admin), err, statetest.EnvAdminURL)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, stmt)
		return err
	}
	if err := exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
		return "", nil, err
	}
	if err := exec(`CREATE DATABASE ` + name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	dbURL := u.String()
	store, err := state.Open(ctx, dbURL, zap.NewNop())
	if err != nil {
		return "", nil, err
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return "", nil, err
	}
	drop := func() {
		if err := exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			logf("drop %s: %v", name, err)
		}
	}
	return dbURL, drop, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// loadCRM copies the world's CRM rows into crm_contacts and the links an
// earlier run left into syncd.links, with COPY. The row-level NOTIFY trigger
// is off during the load, as the migration advises for bulk loads.
func loadCRM(ctx context.Context, dbURL string, w world) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE crm_contacts DISABLE TRIGGER crm_contacts_notify`); err != nil {
		return err
	}
	i := 0
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"crm_contacts"},
		[]string{"external_id", "display_name", "email", "phone", "language", "metadata", "updated_at", "deleted_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == w.n {
				return nil, nil
			}
			r := record(i)
			i++
			return []any{r.ExternalID, r.DisplayName, r.Email, r.Phone, r.Language, r.Metadata, r.UpdatedAt, r.DeletedAt}, nil
		}))
	if err != nil {
		return err
	}
	if int(n) != w.n {
		return fmt.Errorf("copied %d rows, want %d", n, w.n)
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE crm_contacts ENABLE TRIGGER crm_contacts_notify`); err != nil {
		return err
	}

	var links [][]any
	w.contacts(func(c sinch.Contact, l planner.Link) {
		if l.ExternalID != "" {
			links = append(links, []any{projectID, l.ExternalID, l.ContactID, l.ContentHash, loadedAt})
		}
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"syncd", "links"},
		[]string{"project_id", "external_id", "contact_id", "content_hash", "synced_at"}, pgx.CopyFromRows(links)); err != nil {
		return err
	}
	for _, stmt := range []string{`VACUUM ANALYZE crm_contacts`, `VACUUM ANALYZE syncd.links`} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

const projectID = sinchtest.DefaultProjectID

// seedEmulator stores the world's Sinch project in the emulator, in id
// order, in slices of 10,000.
func seedEmulator(emu *sinchtest.Emulator, w world) {
	batch := make([]sinch.Contact, 0, 10_000)
	w.contacts(func(c sinch.Contact, _ planner.Link) {
		batch = append(batch, c)
		if len(batch) == cap(batch) {
			emu.Seed(batch...)
			batch = batch[:0]
		}
	})
	emu.Seed(batch...)
}

// touchRows changes k in-sync rows (a new display name) and rewrites the
// updated_at of k others without changing them, for an incremental run:
// k look-ups and k patches, nothing for the touched rows.
func touchRows(ctx context.Context, dbURL string, k int) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var changed, touched []string
	for j := range k {
		changed = append(changed, externalID(j*100))   // i%100 == 0: in sync
		touched = append(touched, externalID(j*100+1)) // i%100 == 1: in sync
	}
	if _, err := conn.Exec(ctx, `UPDATE crm_contacts SET display_name = display_name || ' (renamed)', updated_at = now()
		WHERE external_id = ANY($1)`, changed); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `UPDATE crm_contacts SET updated_at = now() WHERE external_id = ANY($1)`, touched)
	return err
}

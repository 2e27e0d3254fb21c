package crm

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// upsertChunk keeps a statement at 10,000 parameters, well under
// PostgreSQL's 65,535.
const upsertChunk = 1000

// UpsertRecords writes recs into table, a table of the contract shape (the
// reference crm_contacts or one like it), inserting new external_ids and
// updating existing ones, all in one transaction. It exists for tests, the
// demo and seeding; syncd never writes to a CRM, and a Reader only reads.
//
// A record with a zero UpdatedAt gets the time of the write. A row whose
// content would not change is left alone, updated_at included, so re-seeding
// the same data does not look like a change to incremental sync. When recs
// repeat an external_id the last one wins.
func UpsertRecords(ctx context.Context, db *sql.DB, table string, recs []Record) error {
	rel, err := quoteRelation(table)
	if err != nil {
		return err
	}
	var stamped, unstamped []Record
	for _, r := range lastOfEach(recs) {
		if r.UpdatedAt.IsZero() {
			unstamped = append(unstamped, r)
		} else {
			stamped = append(stamped, r)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("crm: upsert into %s: %w", table, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, group := range []struct {
		recs    []Record
		stamped bool
	}{{stamped, true}, {unstamped, false}} {
		for chunk := range slices.Chunk(group.recs, upsertChunk) {
			query, args := upsertStatement(rel, chunk, group.stamped)
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				return fmt.Errorf("crm: upsert into %s: %w", table, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("crm: upsert into %s: %w", table, err)
	}
	return nil
}

// upsertStatement builds one multi-row INSERT ... ON CONFLICT. Parameters are
// untyped so that PostgreSQL types them from the target columns: metadata may
// be text or jsonb, as the contract allows.
func upsertStatement(rel string, recs []Record, stamped bool) (string, []any) {
	const dataCols = "display_name, email, phone, channel_identities, channel_priority, language, metadata, deleted_at"
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + rel + " AS t (external_id, " + dataCols + ", updated_at) VALUES ")
	perRow := 9
	if stamped {
		perRow = 10
	}
	args := make([]any, 0, len(recs)*perRow)
	for i, r := range recs {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		n := len(args)
		for j := 1; j <= 9; j++ {
			if j > 1 {
				sb.WriteString(", ")
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n + j))
		}
		if stamped {
			sb.WriteString(", $" + strconv.Itoa(n+10) + ")")
		} else {
			sb.WriteString(", now())")
		}
		// A nil []byte or []string is sent as NULL, an empty one as '' or '{}'.
		args = append(args, r.ExternalID, r.DisplayName, r.Email, r.Phone, r.ChannelIdentities,
			r.ChannelPriority, r.Language, r.Metadata, r.DeletedAt)
		if stamped {
			args = append(args, r.UpdatedAt)
		}
	}
	sb.WriteString(" ON CONFLICT (external_id) DO UPDATE SET ")
	cols := strings.Split(dataCols+", updated_at", ", ")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c + " = EXCLUDED." + c)
	}
	compare := strings.Split(dataCols, ", ")
	if stamped {
		compare = append(compare, "updated_at")
	}
	sb.WriteString(" WHERE (t." + strings.Join(compare, ", t.") + ") IS DISTINCT FROM (EXCLUDED." +
		strings.Join(compare, ", EXCLUDED.") + ")")
	return sb.String(), args
}

// lastOfEach keeps the last record of each external_id, in order of first
// appearance: one statement may not upsert a row twice ("ON CONFLICT DO
// UPDATE command cannot affect row a second time"), and a later record is
// the caller's latest word.
func lastOfEach(recs []Record) []Record {
	pos := make(map[string]int, len(recs))
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		if i, ok := pos[r.ExternalID]; ok {
			out[i] = r
			continue
		}
		pos[r.ExternalID] = len(out)
		out = append(out, r)
	}
	return out
}

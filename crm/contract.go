package crm

import (
	"context"
	"fmt"
)

// SourceCheck is what CheckSource found wrong with a source relation.
type SourceCheck struct {
	// Missing names the contract columns the relation lacks.
	Missing []string
	// Mistyped describes each column whose type syncd cannot read, with the
	// type it has and the types that would do.
	Mistyped []string
	// Warnings are usable but risky choices (a timestamp without time zone).
	Warnings []string
}

// OK reports whether syncd can read the relation.
func (c SourceCheck) OK() bool { return len(c.Missing) == 0 && len(c.Mistyped) == 0 }

// contractColumn is one column of the source contract (SPEC §2) and what
// its type may be.
type contractColumn struct {
	name   string
	usable func(c columnType) bool
	want   string
}

// columnType is a column's type as the catalog describes it.
type columnType struct {
	formatted    string // format_type: character varying(80), text[]
	name         string // pg_type.typname: varchar, _text, jsonb
	category     string // pg_type.typcategory: S string, A array, U user-defined…
	elemCategory string // an array's element category
	typtype      string // c for a composite
}

func (c columnType) isJSON() bool { return c.name == "json" || c.name == "jsonb" }

// scalar columns read as text: every scalar casts to text (varchar, citext,
// uuid, an integer id), but an array, a row or JSON would arrive in its
// literal syntax.
func scalar(c columnType) bool { return c.category != "A" && c.typtype != "c" && !c.isJSON() }

func textOrJSON(c columnType) bool { return c.category == "S" || c.isJSON() }

func timestamp(c columnType) bool {
	return c.name == "timestamptz" || c.name == "timestamp" || c.name == "date"
}

// The contract, in the order of recordColumns.
var contractColumns = []contractColumn{
	{"external_id", scalar, "text, varchar, uuid or a number"},
	{"display_name", scalar, "text or varchar"},
	{"email", scalar, "text or varchar"},
	{"phone", scalar, "text or varchar"},
	{"channel_identities", textOrJSON, "jsonb, json or text holding a JSON array"},
	{"channel_priority", func(c columnType) bool { return c.category == "A" && c.elemCategory == "S" }, "text[]"},
	{"language", scalar, "text or varchar"},
	{"metadata", textOrJSON, "text, jsonb or json"},
	{"updated_at", timestamp, "timestamptz"},
	{"deleted_at", timestamp, "timestamptz"},
}

// CheckSource looks the source relation up in the catalog and reports every
// contract column that is missing or of a type syncd cannot read, rather than
// the first one a query would trip on. A relation that does not exist, or
// that the role cannot read, is an error, and so is a filter that does not
// run over it.
func (s *Reader) CheckSource(ctx context.Context, src Source) (SourceCheck, error) {
	var check SourceCheck
	source := src.Relation
	rel, err := quoteRelation(source)
	if err != nil {
		return check, err
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, rel).Scan(&exists); err != nil {
		return check, fmt.Errorf("crm: look up %s: %w", source, err)
	}
	if !exists {
		return check, fmt.Errorf("relation %s does not exist (looked up on the search_path of the database's role)", source)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory,
			COALESCE(e.typcategory, ''), t.typtype
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, rel)
	if err != nil {
		return check, fmt.Errorf("crm: read the columns of %s: %w", source, err)
	}
	have := map[string]columnType{}
	for rows.Next() {
		var name string
		var c columnType
		if err := rows.Scan(&name, &c.formatted, &c.name, &c.category, &c.elemCategory, &c.typtype); err != nil {
			rows.Close()
			return check, err
		}
		have[name] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return check, err
	}
	for _, want := range contractColumns {
		c, ok := have[want.name]
		if !ok {
			check.Missing = append(check.Missing, want.name)
			continue
		}
		if !want.usable(c) {
			check.Mistyped = append(check.Mistyped, fmt.Sprintf("%s is %s, want %s", want.name, c.formatted, want.want))
			continue
		}
		if c.name == "timestamp" || c.name == "date" {
			check.Warnings = append(check.Warnings, fmt.Sprintf(
				"%s is %s, without time zone: syncd reads it in the database's TimeZone setting, so a server or session in another zone shifts it; timestamptz is safe", want.name, c.formatted))
		}
	}
	if !check.OK() {
		return check, nil
	}
	// The catalog says the columns are right; this proves the role may read
	// them, that the casts syncd makes hold and that the filter runs.
	from, err := src.FromItem()
	if err != nil {
		return check, err
	}
	if _, err := s.db.ExecContext(ctx, `SELECT `+recordColumns+` FROM `+rel+` LIMIT 0`); err != nil {
		return check, fmt.Errorf("cannot read %s: %w", source, err)
	}
	if src.Filter != "" {
		if _, err := s.db.ExecContext(ctx, `SELECT `+recordColumns+` FROM `+from+` LIMIT 0`); err != nil {
			return check, fmt.Errorf("the filter %s does not run over %s: %w", src.Filter, source, err)
		}
	}
	return check, nil
}

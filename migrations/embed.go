// Package migrations holds syncd's versioned SQL schema as goose migrations.
// They are embedded so that `syncd migrate` and the tests need no files on
// disk; state.Migrate applies them.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql as goose expects.
//
//go:embed *.sql
var FS embed.FS

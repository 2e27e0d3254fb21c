package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestDemo(t *testing.T) {
	admin := os.Getenv("SYNCD_TEST_DATABASE_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	name := fmt.Sprintf("syncd_demo_test_%d", os.Getpid())
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})

	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "SYNCD_DATABASE_URL" {
			return admin
		}
		return ""
	}
	code := run(context.Background(), []string{"demo", "--database", name}, &out, &errOut, getenv)
	if code != 0 {
		t.Fatalf("demo exited %d:\n%s\n%s", code, out.String(), errOut.String())
	}
	text := out.String()
	for _, want := range []string{"create", "patch", "merge", "delete", "rejected  crm-0028", "Nothing to do",
		"Sinch posts a signed CONTACT_UPDATE", "1 pending in syncd.webhook_events", `"Barbara Liskov" again`} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}

	// The Sinch-side edit and the echo of its fix came as two events, each
	// done by an event run of its own; only the first run wrote.
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT e.trigger, e.done_at IS NOT NULL, r.kind,
			coalesce((r.counts ->> 'patch')::int, -1)
		FROM syncd.webhook_events e LEFT JOIN syncd.runs r ON r.id = e.run_id ORDER BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var trigger, kind string
		var done bool
		var patched int
		if err := rows.Scan(&trigger, &done, &kind, &patched); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s done=%v %s patched=%d", trigger, done, kind, patched))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"CONTACT_UPDATE done=true event patched=1", "CONTACT_UPDATE done=true event patched=0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the demo's events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
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
	for _, want := range []string{"create", "patch", "merge", "delete", "rejected  crm-0028", "Nothing to do"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
}

package statetest

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fatalTB stands in for a test so that NewDatabase's verdict can be observed:
// Fatalf and the Skip family stop the "test" with a panic that the caller
// recovers, as FailNow and SkipNow stop a real one.
type fatalTB struct {
	testing.TB
	fatal, skipped string
}

type stopped struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (f *fatalTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...); panic(stopped{}) }
func (f *fatalTB) FailNow()          { f.fatal = "FailNow"; panic(stopped{}) }
func (f *fatalTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (f *fatalTB) Skip(args ...any) { f.skipped = fmt.Sprint(args...); panic(stopped{}) }
func (f *fatalTB) SkipNow()         { f.skipped = "SkipNow"; panic(stopped{}) }

func run(tb *fatalTB, fn func(testing.TB)) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
		}
	}()
	fn(tb)
}

// A missing server must fail loudly: a skip would let CI pass with no
// database test having run.
func TestUnreachableServerFailsTheTest(t *testing.T) {
	const secret = "n0t-for-logs"
	t.Setenv(EnvAdminURL, "postgres://postgres:"+secret+"@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	for name, fn := range map[string]func(testing.TB){
		"NewDatabase":      func(tb testing.TB) { NewDatabase(tb) },
		"NewEmptyDatabase": func(tb testing.TB) { NewEmptyDatabase(tb) },
		"NewStore":         func(tb testing.TB) { NewStore(tb) },
	} {
		tb := &fatalTB{TB: t}
		run(tb, fn)
		if tb.skipped != "" {
			t.Errorf("%s skipped: %s", name, tb.skipped)
		}
		if tb.fatal == "" {
			t.Errorf("%s did not fail", name)
		}
		if strings.Contains(tb.fatal, secret) {
			t.Errorf("%s failure shows the password: %s", name, tb.fatal)
		}
		t.Logf("%s: %s", name, tb.fatal)
	}
}

func TestNotAURLFailsTheTest(t *testing.T) {
	t.Setenv(EnvAdminURL, "host=127.0.0.1 dbname=test")
	tb := &fatalTB{TB: t}
	run(tb, func(tb testing.TB) { NewDatabase(tb) })
	if tb.fatal == "" {
		t.Fatal("a keyword/value admin DSN was accepted")
	}
}

func TestTemplateNameFollowsTheMigrations(t *testing.T) {
	t.Parallel()
	a, err := TemplateName()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := TemplateName()
	if a != b || !strings.HasPrefix(a, "syncd_tmpl_") || len(a) > 63 {
		t.Fatalf("TemplateName = %q, then %q", a, b)
	}
}

// Each test gets its own database, and the copy is already migrated.
func TestDatabasesAreFreshAndMigrated(t *testing.T) {
	t.Parallel()
	a, b := NewStore(t), NewStore(t)
	ctx := t.Context()
	if err := a.DB().WithContext(ctx).Exec(`INSERT INTO crm_contacts (external_id) VALUES ('only-in-a')`).Error; err != nil {
		t.Fatalf("template copy lacks the schema: %v", err)
	}
	var n int64
	if err := b.DB().WithContext(ctx).Raw(`SELECT count(*) FROM crm_contacts`).Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("second database sees %d rows (%v), want its own empty table", n, err)
	}
}

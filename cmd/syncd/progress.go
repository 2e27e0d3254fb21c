package main

import (
	"fmt"
	"io"
	stdsync "sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"

	contactsync "github.com/syncd/syncd/sync"
)

// progressView shows how a backfill advances: a bar with the phase, counts,
// rate and ETA on a terminal; elsewhere (journald, CI logs) a log line every
// few seconds, since a bar redrawn into a file is noise.
type progressView struct {
	mu      stdsync.Mutex
	w       io.Writer // the terminal, or nil to log instead
	log     *zap.Logger
	every   time.Duration
	bar     *progressbar.ProgressBar
	phase   string
	lastLog time.Time
	started time.Time
	last    contactsync.Progress
	colour  bool // the bar may be green (env.colour)
}

func newProgressView(w io.Writer, terminal, colour bool, log *zap.Logger) *progressView {
	v := &progressView{log: log, every: 5 * time.Second, started: time.Now(), colour: colour}
	if terminal {
		v.w = w
	}
	return v
}

// writeLine erases the bar from its line and writes p (a log line) to w,
// so that the line starts at the margin rather than on the bar; the next
// update redraws the bar below it. Holding v.mu keeps an update from
// drawing in between.
func (v *progressView) writeLine(w io.Writer, p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.bar != nil {
		_ = v.bar.Clear()
	}
	return w.Write(p)
}

// console is stderr as the logger and a progress bar share it: a log line
// clears the bar first.
type console struct {
	mu   stdsync.Mutex
	w    io.Writer
	view *progressView // the bar being drawn on w, if any
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view != nil {
		return c.view.writeLine(c.w, p)
	}
	return c.w.Write(p)
}

// Sync lets zap flush a file behind the console.
func (c *console) Sync() error {
	if s, ok := c.w.(interface{ Sync() error }); ok {
		_ = s.Sync() // a terminal or pipe cannot sync; that is no error
	}
	return nil
}

// draw makes v the bar that log lines clear; nil when it is done.
func (c *console) draw(v *progressView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.view = v
}

func (v *progressView) update(p contactsync.Progress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.last = p
	if v.w == nil {
		if time.Since(v.lastLog) >= v.every {
			v.lastLog = time.Now()
			v.logLine(p)
		}
		return
	}
	if p.Phase != v.phase {
		if v.bar != nil {
			// The reading bar gives way to a line that keeps its counts.
			_ = v.bar.Clear()
			fmt.Fprintln(v.w, readingLine(p))
		}
		v.phase = p.Phase
		v.bar = v.newBar(p)
	}
	switch p.Phase {
	case contactsync.PhaseReading:
		// Rows and contacts are counted apart: their sum means nothing.
		v.bar.Describe(readingLine(p))
		_ = v.bar.Set(p.CRMRows + p.Contacts)
	case contactsync.PhaseApplying:
		v.bar.ChangeMax(p.Total)
		_ = v.bar.Set(p.Done)
	}
}

func (v *progressView) newBar(p contactsync.Progress) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(v.w),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("ops"),
		progressbar.OptionEnableColorCodes(v.colour),
	}
	if p.Phase == contactsync.PhaseReading {
		return progressbar.NewOptions(-1,
			progressbar.OptionSetWriter(v.w),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetElapsedTime(true),
			// No spinner of its own: a goroutine redrawing at any moment
			// would draw between a log line's clearing and its text.
			progressbar.OptionSetSpinnerChangeInterval(0),
		)
	}
	return progressbar.NewOptions(p.Total, append(opts,
		progressbar.OptionSetDescription("applying"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetTheme(v.theme()),
	)...)
}

// theme is the applying bar's: green where colour is allowed.
func (v *progressView) theme() progressbar.Theme {
	if !v.colour {
		return progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}
	}
	return progressbar.Theme{Saucer: "[green]=[reset]", SaucerHead: "[green]>[reset]", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}
}

func (v *progressView) logLine(p contactsync.Progress) {
	fields := []zap.Field{zap.String("phase", p.Phase), zap.Int("crm_rows", p.CRMRows), zap.Int("contacts", p.Contacts)}
	if p.Phase == contactsync.PhaseApplying {
		elapsed := time.Since(v.started).Seconds()
		rate := float64(p.Done) / max(elapsed, 1e-9)
		fields = append(fields, zap.Int("done", p.Done), zap.Int("total", p.Total), zap.Float64("ops_per_second", rate))
		if rate > 0 && p.Total > p.Done {
			fields = append(fields, zap.Duration("eta", time.Duration(float64(p.Total-p.Done)/rate*float64(time.Second)).Round(time.Second)))
		}
	}
	v.log.Info("progress", fields...)
}

// finish replaces the bar by a line that says what was done, which after
// Ctrl-C is less than what was planned (a bar filled to 100 % would lie).
// Without a terminal it logs nothing: the run's own "run finished" line,
// already written, has the counts, and a progress line after it would
// read as if the run went on.
func (v *progressView) finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.w == nil {
		return
	}
	if v.bar == nil {
		return
	}
	_ = v.bar.Clear()
	v.bar = nil
	p := v.last
	switch {
	case p.Phase == contactsync.PhaseReading:
		fmt.Fprintf(v.w, "%s; stopped before applying\n", readingLine(p))
	case p.Done < p.Total:
		fmt.Fprintf(v.w, "applied %d of %d operations; %d not sent\n", p.Done, p.Total, p.Total-p.Done)
	default:
		fmt.Fprintf(v.w, "applied %d of %d operations\n", p.Done, p.Total)
	}
}

func readingLine(p contactsync.Progress) string {
	return fmt.Sprintf("reading: %d CRM rows, %d Sinch contacts", p.CRMRows, p.Contacts)
}

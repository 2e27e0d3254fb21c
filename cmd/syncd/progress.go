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
}

func newProgressView(w io.Writer, terminal bool, log *zap.Logger) *progressView {
	v := &progressView{log: log, every: 5 * time.Second, started: time.Now()}
	if terminal {
		v.w = w
	}
	return v
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
			_ = v.bar.Finish()
			fmt.Fprintln(v.w)
		}
		v.phase = p.Phase
		v.bar = v.newBar(p)
	}
	switch p.Phase {
	case contactsync.PhaseReading:
		v.bar.Describe(fmt.Sprintf("reading: %d CRM rows, %d Sinch contacts", p.CRMRows, p.Contacts))
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
		progressbar.OptionEnableColorCodes(true),
	}
	if p.Phase == contactsync.PhaseReading {
		return progressbar.NewOptions(-1, append(opts, progressbar.OptionSetItsString("items"))...)
	}
	return progressbar.NewOptions(p.Total, append(opts,
		progressbar.OptionSetDescription("applying"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "[green]=[reset]", SaucerHead: "[green]>[reset]", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
	)...)
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

// finish draws the bar's last state, or logs the last line.
func (v *progressView) finish() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.w == nil {
		v.logLine(v.last)
		return
	}
	if v.bar != nil {
		_ = v.bar.Finish()
		fmt.Fprintln(v.w)
	}
}

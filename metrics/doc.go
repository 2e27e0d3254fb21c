// Package metrics holds syncd's Prometheus metrics and the daemon's HTTP
// endpoints: /healthz, /readyz and /metrics.
//
// [New] builds a [Metrics] whose collectors live on a registry of their own
// (never the process-wide default one), next to the Go runtime and process
// collectors. What is about one Sinch project is recorded through that
// project's view, [Metrics.Project]: a *[Project] is a [sinch.Observer] for
// the project's Sinch client, a sync.Observer for its reconciler and a
// webhook.Observer for its receiver, and its other methods are the
// scheduler's and the daemon's hooks. Every series it touches carries the
// label project, the project's name in the configuration ("default" for a
// configuration without a projects: list). All methods are safe for
// concurrent use, and a nil *Metrics or *Project records nothing, so a
// caller that runs without metrics needs no checks.
//
// The series it exposes, each with a project label but
// syncd_start_time_seconds, which is about the process:
//
//	syncd_sinch_calls_total{operation,code}            counter, one per HTTP attempt (retries and token fetches included)
//	syncd_sinch_call_duration_seconds{operation}       histogram
//	syncd_runs_total{kind,outcome}                     counter
//	syncd_run_duration_seconds{kind}                   histogram
//	syncd_last_success_timestamp_seconds{kind}         gauge, Unix time of the last succeeded run
//	syncd_operations_total{kind,status}                counter
//	syncd_rejected_rows_total                          counter
//	syncd_changes_deferred_total{kind}                 counter, changes partial runs left to the next full run
//	syncd_read_horizon_held_seconds                    gauge, how far open CRM transactions held the watermark back at the last run's start
//	syncd_lock_wait_seconds                            histogram
//	syncd_ticks_skipped_total{kind,reason}             counter
//	syncd_lock_held                                    gauge, 0 or 1
//	syncd_lock_held_seconds                            gauge, how long the current hold has lasted, 0 when not held
//	syncd_project_active                               gauge, 1 active for the project, 0 standing by (absent until set)
//	syncd_start_time_seconds                           gauge, Unix time the process started (no project label)
//	syncd_schedule_period_seconds{kind}                gauge, longest gap of the run kind's schedule (syncd run)
//	syncd_deletes_withheld{kind}                       gauge, deletes the last run of the kind withheld (syncd run)
//	syncd_sinch_rate_limit_rps                         gauge, the project's client's current rate limit
//	syncd_webhook_events_received_total{trigger}       counter, verified contact callbacks
//	syncd_webhook_events_duplicate_total               counter, of those, events stored already
//	syncd_webhook_callbacks_refused_total{reason}      counter
//	syncd_webhook_events_applied_total{trigger}        counter, events processed
//	syncd_webhook_event_lag_seconds                    histogram, event_time to processed
//
// Every label but project takes its value from a short fixed list; anything
// else is counted as "other" (and a Sinch call that got no answer as code
// "error"), so a caller's mistake cannot grow the number of series. The
// project label takes the configuration's project names, so the
// configuration bounds it. Contact and external ids never become labels:
// they belong in logs and the journal.
//
// [Handler] serves the three endpoints. /healthz says the process is alive
// and never touches the database, so a database outage does not get the
// daemon restarted. /readyz says whether it can do its job: the database
// answers a ping within two seconds and the last run did not fail.
//
// [sinch.Observer]: https://pkg.go.dev/github.com/syncd/syncd/sinch#Observer
package metrics

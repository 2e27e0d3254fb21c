// Command syncd keeps the contacts of a Sinch Conversation API project
// aligned with the contact records of a CRM in PostgreSQL.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// Exit statuses. 2 follows `terraform plan -detailed-exitcode`; 75 is
// EX_TEMPFAIL from sysexits.h, "try again later".
const (
	exitOK              = 0
	exitError           = 1
	exitChangesPending  = 2
	exitDeletesWithheld = 3
	exitStalePlan       = 4
	exitTempFail        = 75
	exitInterrupted     = 130 // 128 + SIGINT, as shells report it
)

// exitError carries an exit status other than 1 out of a command.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, environ: os.Environ}, os.Args[1:])
	stop()
	os.Exit(code)
}

// env is the process's surroundings, so that tests can run commands in
// process with their own.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// environ lists the environment as KEY=value, for the SYNCD_ variables
	// syncd does not know; nil checks none.
	environ func() []string

	console  *console        // stderr as the logger writes it; see logger
	logLevel zap.AtomicLevel // the level of the last logger made, which syncd run's reload changes

	// hangups, when set, stands in for SIGHUP in syncd run: tests reload
	// an in-process daemon with it.
	hangups <-chan os.Signal

	configFlag string // --config, "" when not given
	configPath string // the file read: see findConfig
	// configExplicit is set when --config or SYNCD_CONFIG named the file,
	// which must then exist.
	configExplicit bool
	project        string // --project: the project a command acts on

	// ready, when set, is called once `syncd run` serves and schedules, with
	// its HTTP address; tests wait on it.
	ready func(httpAddr string)
	// webhookReady, when set, is called with webhook.listen's address once
	// it serves.
	webhookReady func(addr string)
}

// run executes one syncd command line and returns its exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return execute(ctx, &env{stdout: stdout, stderr: stderr, getenv: getenv}, args)
}

// execute runs one command line in e's surroundings.
func execute(ctx context.Context, e *env, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var coded *exitCodeError
	if !errors.As(err, &coded) && ctx.Err() != nil {
		// SIGINT or SIGTERM cut the command short: what failed after it is
		// its consequence ("context canceled"), not a fault to chase.
		fmt.Fprintln(stderr, "syncd: interrupted")
		return exitInterrupted
	}
	if errors.As(err, &coded) {
		if coded.err != nil {
			fmt.Fprintf(stderr, "syncd: %v\n", coded.err)
		}
		return coded.code
	}
	fmt.Fprintf(stderr, "syncd: %v\n", err)
	return exitError
}

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "syncd",
		Short: "Keep Sinch Conversation API contacts aligned with CRM records in PostgreSQL",
		Long: `syncd reconciles the contacts of a Sinch Conversation API project with the
contact records of a CRM in PostgreSQL. The CRM is the source of truth.

Exit status: each command's help lists its own; 0 is success and 1 an error
for all of them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			e.findConfig()
		},
	}
	root.PersistentFlags().StringVar(&e.configFlag, "config", "", "the configuration file (default: $SYNCD_CONFIG, else ./config.yaml, else "+systemConfig+", else none: the environment and the defaults)")
	root.PersistentFlags().StringVar(&e.project, "project", "", "the project of the configuration's projects: list to act on (required with several, for the commands that act on one)")
	_ = root.RegisterFlagCompletionFunc("project", func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		// A configuration with problems still names its projects.
		e.findConfig()
		cfg, _ := readConfig(e.configPath, e.configExplicit, e.getenv)
		return completeValues(projectNames(cfg), false)(cmd, args, toComplete)
	})
	root.AddCommand(
		e.migrateCommand(),
		e.runCommand(),
		e.statusCommand(),
		e.configCommand(),
		e.diffCommand(),
		e.backfillCommand(),
		e.applyCommand(),
		e.explainCommand(),
		e.pruneCommand(),
		e.demoCommand(),
		e.emulatorCommand(),
		e.webhooksCommand(),
		e.eventsCommand(),
		e.versionCommand(),
		e.docsCommand(),
	)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	finishCommands(root)
	return root
}

// defaultExitStatus is the exit statuses of the commands that say nothing
// of their own: cobra's help and completion, and version.
const defaultExitStatus = "Exit status: 0, 1 error."

// exitStatusKey is the annotation that holds a command's exit statuses,
// which its help prints last, after the flags (helpTemplate), and its
// manual page in a section of its own.
const exitStatusKey = "exit_status"

// helpTemplate is cobra's, with the exit statuses at the end.
const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}{{with index .Annotations "exit_status"}}
{{.}}
{{end}}`

// finishCommands walks the command tree: a command that only groups others
// (syncd config) refuses an unknown subcommand with a suggestion, as the
// root does, instead of printing its help and exiting 0; and every
// command's help ends with its exit statuses, moved from the end of its
// long description (or the default ones) to after its flags.
func finishCommands(cmd *cobra.Command) {
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = unknownSubcommand
		cmd.SuggestionsMinimumDistance = 2
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	long, status, found := strings.Cut(cmd.Long, "Exit status:")
	if !found {
		long, status = cmd.Long, strings.TrimPrefix(defaultExitStatus, "Exit status:")
	}
	if long = strings.TrimSpace(long); long == "" {
		long = cmd.Short + "."
	}
	cmd.Long = long
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[exitStatusKey] = "Exit status:" + strings.TrimRight(status, "\n")
	cmd.SetHelpTemplate(helpTemplate)
	for _, c := range cmd.Commands() {
		finishCommands(c)
	}
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", cmd.CommandPath()+" "+s[0])
	}
	return fmt.Errorf("%s (%s --help lists its commands)", msg, cmd.CommandPath())
}

// completeValues completes a flag from a fixed list; with list set, a
// comma-separated list of them (--only create,delete).
func completeValues(values []string, list bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		prefix := ""
		if i := strings.LastIndexByte(toComplete, ','); list && i >= 0 {
			prefix = toComplete[:i+1]
		}
		var out []string
		for _, v := range values {
			if list && strings.Contains(","+prefix, ","+v+",") {
				continue // already given
			}
			if strings.HasPrefix(prefix+v, toComplete) {
				out = append(out, prefix+v)
			}
		}
		directive := cobra.ShellCompDirectiveNoFileComp
		if list {
			directive |= cobra.ShellCompDirectiveNoSpace
		}
		return out, directive
	}
}

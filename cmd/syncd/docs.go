package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// docsCommand writes what the Debian package installs beside the binary,
// generated from the commands themselves so that it cannot drift from
// them: a manual page for syncd and each subcommand (cobra's generator),
// and the bash, zsh and fish completion scripts (cobra's). Hidden: it is
// packaging/build-deb's, not an operator's.
func (e *env) docsCommand() *cobra.Command {
	var manDir, completionDir, source, date string
	cmd := &cobra.Command{
		Use:    "docs",
		Short:  "Write the manual pages and shell completions the package installs",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root := cmd.Root()
			if manDir != "" {
				when := time.Now().UTC()
				if date != "" {
					t, err := time.Parse(time.DateOnly, date)
					if err != nil {
						return fmt.Errorf("--date: %w", err)
					}
					when = t
				}
				header := &doc.GenManHeader{Section: "1", Source: source, Manual: "syncd manual", Date: &when}
				if err := writeManPages(root, header, manDir); err != nil {
					return err
				}
			}
			if completionDir != "" {
				if err := writeCompletions(root, completionDir); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "write a manual page per command (syncd.1, syncd-run.1, ...) into this directory")
	cmd.Flags().StringVar(&completionDir, "completions", "", "write syncd.bash, _syncd (zsh) and syncd.fish into this directory")
	cmd.Flags().StringVar(&source, "source", "syncd "+version, "the pages' source line (the version)")
	cmd.Flags().StringVar(&date, "date", "", "the pages' date, YYYY-MM-DD (default today), for reproducible builds")
	return cmd
}

// writeManPages writes one page per available command, each with its exit
// statuses in a section of its own (cobra's pages have none).
func writeManPages(root *cobra.Command, header *doc.GenManHeader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != root {
			return nil
		}
		var buf bytes.Buffer
		h := *header
		if err := doc.GenMan(c, &h, &buf); err != nil {
			return err
		}
		page := buf.String()
		if status := c.Annotations[exitStatusKey]; status != "" {
			section := ".SH EXIT STATUS\n.PP\n" + manEscape(strings.TrimSpace(strings.TrimPrefix(status, "Exit status:"))) + "\n\n"
			if i := strings.Index(page, ".SH SEE ALSO"); i >= 0 {
				page = page[:i] + section + page[i:]
			} else {
				page += section
			}
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(page), 0o644); err != nil {
			return err
		}
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// manEscape makes text safe in a roff paragraph: a backslash is roff's
// escape, and a line starting with a dot or quote would be a request.
func manEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// writeCompletions writes cobra's completion scripts, under the names the
// package installs them by.
func writeCompletions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, gen := range map[string]func(*bytes.Buffer) error{
		"syncd.bash": func(b *bytes.Buffer) error { return root.GenBashCompletionV2(b, true) },
		"_syncd":     func(b *bytes.Buffer) error { return root.GenZshCompletion(b) },
		"syncd.fish": func(b *bytes.Buffer) error { return root.GenFishCompletion(b, true) },
	} {
		var buf bytes.Buffer
		if err := gen(&buf); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

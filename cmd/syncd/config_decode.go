package main

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// decodeConfig decodes a configuration file into cfg key by key, so that
// one bad key does not hide the others: it returns one error per unknown
// key or unusable value, each named by its key path (sinch.timeout) and
// worded for the person editing the file rather than in Go's or the YAML
// parser's terms. Keys with a problem keep their previous value.
//
// The projects: list is returned undecoded, for decodeProjects: each
// project starts from the top level once the environment has been applied
// to it.
func decodeConfig(data []byte, cfg *Config) (projects *yaml.Node, errs []error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{&syntaxError{msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(doc.Content) == 0 { // an empty file
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.MappingNode {
		rest := *top
		rest.Content = nil
		for i := 0; i+1 < len(top.Content); i += 2 {
			if top.Content[i].Value == "projects" {
				projects = top.Content[i+1]
				continue
			}
			rest.Content = append(rest.Content, top.Content[i], top.Content[i+1])
		}
		top = &rest
	}
	decodeNode(top, reflect.ValueOf(cfg).Elem(), "", &errs)
	return projects, errs
}

// projectSections are the top-level sections a project may override, key
// by key; the others (database, http, log...) are the process's.
var projectSections = []string{"sinch", "crm", "sync", "schedule", "webhook"}

// decodeProjects decodes the projects: list, each entry over base (the top
// level with the environment applied), then the project's own variables
// over that (projectEnv). Names are judged by Config.problems; a project
// is named here by its path, projects[eu] or projects[2] while it has no
// usable name.
func decodeProjects(list *yaml.Node, base Config, getenv func(string) string) ([]Project, []error) {
	if list.Kind == yaml.AliasNode {
		list = list.Alias
	}
	var errs []error
	switch {
	case list.Tag == "!!null":
		return nil, nil // "projects:" with nothing under it
	case list.Kind != yaml.SequenceNode:
		return nil, []error{fmt.Errorf("projects: want a list of projects, not %s", describeNode(list))}
	case len(list.Content) == 0:
		return nil, []error{fmt.Errorf("projects: the list is empty: leave it out for one project")}
	}
	var projects []Project
	for i, n := range list.Content {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		p := Project{Config: base}
		path := fmt.Sprintf("projects[%d]", i)
		if n.Kind != yaml.MappingNode {
			errs = append(errs, fmt.Errorf("%s: want the keys of a project (name, %s), not %s", path, strings.Join(projectSections, ", "), describeNode(n)))
			projects = append(projects, p)
			continue
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			if key, value := n.Content[j], n.Content[j+1]; key.Value == "name" {
				if value.Kind == yaml.ScalarNode {
					p.Name = value.Value
				} else {
					errs = append(errs, fmt.Errorf("%s.name: %s is not a single value", path, describeNode(value)))
				}
			}
		}
		path = projectPaths(append(projects, p))[i]
		sections := &yaml.Node{Kind: yaml.MappingNode}
		for j := 0; j+1 < len(n.Content); j += 2 {
			key, value := n.Content[j], n.Content[j+1]
			switch {
			case key.Value == "name":
			case slices.Contains(projectSections, key.Value):
				sections.Content = append(sections.Content, key, value)
			default:
				errs = append(errs, fmt.Errorf("%s.%s: unknown key%s (a project has name, %s)", path, key.Value,
					didYouMean(key.Value, append([]string{"name"}, projectSections...), path+"."), strings.Join(projectSections, ", ")))
			}
		}
		decodeNode(sections, reflect.ValueOf(&p.Config).Elem(), path, &errs)
		if projectNameRE.MatchString(p.Name) {
			for _, o := range envOverrides {
				name := projectEnv(p.Name, o.name)
				if v := getenv(name); o.project && v != "" {
					if err := o.set(&p.Config, v); err != nil {
						errs = append(errs, fmt.Errorf("%s (%s.%s): %w", name, path, o.key, err))
					}
				}
			}
		}
		projects = append(projects, p)
	}
	return projects, errs
}

var durationType = reflect.TypeOf(time.Duration(0))

func decodeNode(n *yaml.Node, v reflect.Value, path string, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Kind() == reflect.Struct {
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return // "sinch:" with nothing under it
			}
			*errs = append(*errs, fmt.Errorf("%s: want keys under it, not %s", pathOr(path), describeNode(n)))
			return
		}
		fields := make(map[string]int, v.NumField())
		var names []string
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = i
			names = append(names, name)
		}
		if path == "" {
			names = append(names, "projects") // decoded apart, by decodeProjects
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			f, ok := fields[key]
			if !ok {
				prefix := ""
				if path != "" {
					prefix = path + "."
				}
				*errs = append(*errs, fmt.Errorf("%s: unknown key%s", p, didYouMean(key, names, prefix)))
				continue
			}
			decodeNode(n.Content[i+1], v.Field(f), p, errs)
		}
		return
	}
	switch {
	case v.Type() == durationType && n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		// A bare 0 is the documented "none" (journal.retention: 0 keeps
		// everything), which YAML reads as a number, not a duration.
		if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil && i == 0 {
			v.SetInt(0)
			return
		}
		*errs = append(*errs, fmt.Errorf("%s: %s is not %s: a number needs its unit", path, describeNode(n), wantOf(v.Type())))
		return
	case isInteger(v.Type()) && n.Kind == yaml.ScalarNode && n.Tag == "!!float":
		// YAML's decoder would drop the fraction: 2.5 attempts are not 2.
		*errs = append(*errs, fmt.Errorf("%s: %s is not %s", path, describeNode(n), wantOf(v.Type())))
		return
	}
	fresh := reflect.New(v.Type())
	if err := n.Decode(fresh.Interface()); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %s is not %s", path, describeNode(n), wantOf(v.Type())))
		return
	}
	v.Set(fresh.Elem())
}

func isInteger(t reflect.Type) bool {
	return t != durationType && t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
}

// didYouMean suggests the key of known (under prefix, the path of their
// section) that key is a typing slip of, as syncd does for a mistyped
// command and with the same measure (cobra's: an edit distance of 2, or a
// prefix): "; did you mean sinch.rate_limit_rps?", or "" for none.
func didYouMean(key string, known []string, prefix string) string {
	if key == "" {
		return ""
	}
	c := &cobra.Command{Use: "config", SuggestionsMinimumDistance: 2}
	for _, k := range known {
		c.AddCommand(&cobra.Command{Use: k, Run: func(*cobra.Command, []string) {}})
	}
	if s := c.SuggestionsFor(key); len(s) > 0 {
		return "; did you mean " + prefix + s[0] + "?"
	}
	return ""
}

// syntaxError is a configuration file that is not YAML: nothing in it can
// be judged, so it is reported alone.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return "not valid YAML: " + e.msg }

func pathOr(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// describeNode names a value as the file spells it.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a set of keys"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func wantOf(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (like 30s, 5m or 1h30m, or 0)"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "a list"
	}
	return "a single value"
}

// parseBool reads a boolean from the environment with the file's wording.
func parseBool(v string) (bool, error) {
	var b bool
	if err := yaml.Unmarshal([]byte(v), &b); err != nil {
		return false, fmt.Errorf("%q is not true or false", v)
	}
	return b, nil
}

// configErrors are every problem of a configuration file and the
// environment. As one error it names the first and counts the rest, so
// that a command still fails in one line.
type configErrors []error

func (e configErrors) Error() string {
	if len(e) == 1 {
		return e[0].Error()
	}
	return fmt.Sprintf("%v (and %s: syncd config check lists them all)", e[0], plural(len(e)-1, "more problem"))
}

func (e configErrors) Unwrap() []error { return e }

package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeConfig decodes a configuration file into cfg key by key, so that
// one bad key does not hide the others: it returns one error per unknown
// key or unusable value, each named by its key path (sinch.timeout) and
// worded for the person editing the file rather than in Go's or the YAML
// parser's terms. Keys with a problem keep their previous value.
func decodeConfig(data []byte, cfg *Config) []error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []error{fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if len(doc.Content) == 0 { // an empty file
		return nil
	}
	var errs []error
	decodeNode(doc.Content[0], reflect.ValueOf(cfg).Elem(), "", &errs)
	return errs
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
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			fields[name] = i
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			f, ok := fields[key]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: unknown key", p))
				continue
			}
			decodeNode(n.Content[i+1], v.Field(f), p, errs)
		}
		return
	}
	fresh := reflect.New(v.Type())
	if err := n.Decode(fresh.Interface()); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %s is not %s", path, describeNode(n), wantOf(v.Type())))
		return
	}
	v.Set(fresh.Elem())
}

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
		return "a duration (like 30s, 5m or 1h30m)"
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

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// maxFileSize bounds the configuration file read: a real one is a few KiB,
// so anything this large is not a configuration file.
const maxFileSize = 1 << 20

// Error is what Load returns for a file it cannot use. Problems holds every
// problem found, each a sentence naming the option (and its line, when the
// file could not be read as TOML).
type Error struct {
	Path     string
	Problems []error
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Path + ": " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %d problems:", e.Path, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *Error) Unwrap() []error { return e.Problems }

// Load reads the configuration file at path. Options missing from the file
// keep their defaults, except version, which the file must state. Unknown
// options, values of the wrong type and TOML syntax errors are refused with
// the option's name and line; then the result must pass Validate. A file
// that other users may write is refused, since whoever can edit it can
// open the server up. Any error is an *Error, except when the file cannot
// be opened, where it wraps the *fs.PathError (so errors.Is(err,
// fs.ErrNotExist) tells a missing file).
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{Path: path, Problems: []error{errors.New("is not a regular file")}}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, &Error{Path: path, Problems: []error{fmt.Errorf("can be changed by other users (permissions %04o), and whoever can change it can open the server up; make it writable by its owner only, for example with: chmod 600 %s", perm, path)}}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{Path: path, Problems: []error{fmt.Errorf("is larger than %d bytes; that is not a dicomshield configuration file", maxFileSize)}}
	}
	c, problems := parse(data)
	if len(problems) == 0 {
		problems = c.Validate()
	}
	if len(problems) > 0 {
		return nil, &Error{Path: path, Problems: problems}
	}
	return c, nil
}

// parse decodes data over the defaults, with version left for the file to
// state.
func parse(data []byte) (*Config, []error) {
	c := Default()
	c.Version = 0
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(c)
	if err != nil {
		return nil, decodeProblems(err)
	}
	// A bare number decodes into a Duration as nanoseconds without going
	// through UnmarshalText; insist on the quoted form instead.
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		return nil, decodeProblems(err)
	}
	var problems []error
	for _, key := range sortedKeys(optionTypes) {
		if optionTypes[key] != durationType {
			continue
		}
		if v, ok := lookup(raw, key); ok {
			if _, isString := v.(string); !isString {
				problems = append(problems, fmt.Errorf("option %q must be %s", key, describe(durationType)))
			}
		}
	}
	if problems != nil {
		return nil, problems
	}
	return c, nil
}

func decodeProblems(err error) []error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var problems []error
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			key := strings.Join(e.Key(), ".")
			problems = append(problems, fmt.Errorf("line %d: unknown option %q; dicomshield has no such option, so check its spelling%s", line, key, knownHint(e.Key())))
		}
		return problems
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if len(de.Key()) == 0 {
			return []error{fmt.Errorf("line %d, column %d: this is not valid TOML: %s", line, col, msg)}
		}
		key := strings.Join(de.Key(), ".")
		if t, ok := optionTypes[key]; ok && strings.HasPrefix(msg, "cannot decode TOML") {
			return []error{fmt.Errorf("line %d: option %q must be %s", line, key, describe(t))}
		}
		return []error{fmt.Errorf("line %d: option %q: %s", line, key, msg)}
	}
	return []error{err}
}

// knownHint lists the options of the table an unknown key was found in.
func knownHint(key []string) string {
	table := strings.Join(key[:len(key)-1], ".")
	var names []string
	for _, k := range sortedKeys(optionTypes) {
		i := strings.LastIndexByte(k, '.')
		parent, name := "", k
		if i >= 0 {
			parent, name = k[:i], k[i+1:]
		}
		if parent == table && optionTypes[k].Kind() != reflect.Struct {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	where := "at the top of the file"
	if table != "" {
		where = "in [" + table + "]"
	}
	return " (the options " + where + " are: " + strings.Join(names, ", ") + ")"
}

var (
	durationType = reflect.TypeFor[Duration]()
	// optionTypes maps each option's dotted key to its Go type.
	optionTypes = func() map[string]reflect.Type {
		m := map[string]reflect.Type{}
		var walk func(t reflect.Type, prefix string)
		walk = func(t reflect.Type, prefix string) {
			for f := range t.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
				if name == "" || name == "-" {
					continue
				}
				m[prefix+name] = f.Type
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type, prefix+name+".")
				}
			}
		}
		walk(reflect.TypeFor[Config](), "")
		return m
	}()
)

func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration in double quotes, such as \"30s\", \"2m\" or \"1h\""
	case t.Kind() == reflect.String:
		return "text in double quotes"
	case t.Kind() == reflect.Int:
		return "a whole number, without quotes"
	case t.Kind() == reflect.Slice:
		return "a list of texts in double quotes, such as [\"a\", \"b\"]"
	case t.Kind() == reflect.Struct:
		return "a table, started by a line such as [name]"
	}
	return "of type " + t.String()
}

func lookup(m map[string]any, dotted string) (any, bool) {
	parts := strings.Split(dotted, ".")
	var v any = m
	for _, p := range parts {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

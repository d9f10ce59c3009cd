package params

import (
	"errors"
	"fmt"
	"github.com/ndrbot/ndrbot/internal/suggest"
	"maps"
	"slices"
	"strings"
)

// Set is the parameters of one playbook by name.
type Set map[string]Spec

// ValidName reports whether name is a usable parameter name: a lower-case
// ASCII letter, then lower-case letters, digits or _, at most 64 in all. It is
// the same rule the chat argument parser applies to key=value keys.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Check reports every problem of the set's names and specs, sorted by name.
func (s Set) Check() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s)) {
		if !ValidName(name) {
			errs = append(errs, fmt.Errorf("parameter %q: a name is a lower-case letter followed by lower-case letters, digits or _", name))
		}
		if err := s[name].Check(); err != nil {
			errs = append(errs, fmt.Errorf("parameter %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Resolve validates what the user gave against the set and returns the typed
// values (see Spec.Parse), with defaults applied. Optional parameters that
// were not given and have no default are absent from the result.
//
// Every problem is reported at once: unknown names, missing required ones and
// invalid values, joined with errors.Join in name order. Each joined error is
// a *Error wrapping incident.ErrInvalidInput, except an invalid default, which
// is the playbook's fault (Check reports it at load time). On error the map is
// nil.
func (s Set) Resolve(raw map[string]string) (map[string]any, error) {
	type problem struct {
		name string
		err  error
	}
	var probs []problem
	known := slices.Sorted(maps.Keys(s))

	for name := range raw {
		if _, ok := s[name]; !ok {
			probs = append(probs, problem{name, s.unknown(name, known)})
		}
	}

	out := make(map[string]any, len(s))
	for _, name := range known {
		spec := s[name]
		v, given := raw[name]
		switch {
		case given:
		case spec.Required:
			probs = append(probs, problem{name, &Error{Param: name, Reason: "missing (" + spec.describe() + ")"}})
			continue
		case spec.Default != "":
			v = spec.Default
		default:
			continue
		}
		val, err := spec.Parse(v)
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				if !given {
					// The playbook is at fault, not the user; Check catches this at load.
					err = fmt.Errorf("%s: the playbook's default is invalid: %s", name, pe.Reason)
				} else {
					err = &Error{Param: name, Reason: pe.Reason}
				}
			}
			probs = append(probs, problem{name, err})
			continue
		}
		out[name] = val
	}

	if len(probs) == 0 {
		return out, nil
	}
	slices.SortStableFunc(probs, func(a, b problem) int { return strings.Compare(a.name, b.name) })
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p.err
	}
	return nil, errors.Join(errs...)
}

func (s Set) unknown(name string, known []string) error {
	shown := Sanitize(name)
	if len(known) == 0 {
		return &Error{Param: shown, Reason: "unknown parameter (this playbook takes none)"}
	}
	hint := ""
	if m := closest(name, known); m != "" {
		hint = "did you mean " + m + "? "
	}
	return &Error{Param: shown, Reason: "unknown parameter (" + hint + "known: " + strings.Join(known, ", ") + ")"}
}

// closest returns the known name within edit distance 2 of name, if any.
func closest(name string, known []string) string {
	if len(name) > 64 {
		return ""
	}
	return suggest.Closest(name, known, 2)
}

package cases

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/ndrbot/ndrbot/playbooks"
)

// The built-in playbooks' own cases, one directory per playbook, each on a
// built-in organisation (org: builtin:NAME): `ndrbot playbooks test` with no
// directory runs them, so an installed binary can check itself.
//
//go:embed builtin/*/*.yaml
var builtinCases embed.FS

// Builtin returns the built-in cases, sorted by name ("ndr-5.5.4/healthy").
func Builtin() ([]Case, error) {
	files, err := fs.Glob(builtinCases, "builtin/*/*.yaml")
	if err != nil {
		return nil, err
	}
	var (
		out []Case
		all playbooks.Problems
	)
	for _, f := range files {
		data, err := builtinCases.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c, err := Parse("builtin:"+strings.TrimPrefix(f, "builtin/"), data)
		var ps playbooks.Problems
		if errors.As(err, &ps) {
			all = append(all, ps...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(c.Org, BuiltinPrefix) {
			all = append(all, playbooks.Problem{File: c.File, Line: 1, Msg: fmt.Sprintf("org: a built-in case uses a built-in organisation (%sNAME), not %q", BuiltinPrefix, c.Org)})
			continue
		}
		c.Name = strings.TrimSuffix(strings.TrimPrefix(f, "builtin/"), path.Ext(f))
		out = append(out, c)
	}
	if len(all) > 0 {
		return nil, all
	}
	return out, nil
}

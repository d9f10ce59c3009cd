package watch

import (
	"fmt"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/playbooks/params"
	"github.com/ndrbot/ndrbot/store"
)

// CatalogPlaybooks answers Playbooks from the loaded playbooks (called on each
// alert: they may be reloaded). The button carries the code and, for a playbook
// that requires a domain (smtp-421), the busiest remote domain of the spike; a
// playbook that requires anything else gets no button but a hint.
type CatalogPlaybooks func() *playbooks.Catalog

// ForCode implements Playbooks.
func (c CatalogPlaybooks) ForCode(code string, top []store.DomainCount) Match {
	pb, err := c().Resolve(code)
	if err != nil {
		return Match{Hint: fmt.Sprintf("No playbook matches %s (/ndr playbooks lists them).", code)}
	}
	m := Match{Playbook: pb.ID, Title: pb.Title}
	raw := map[string]string{}
	button := code
	for _, name := range pb.ParamOrder {
		spec := pb.Params[name]
		if !spec.Required {
			continue
		}
		if spec.Type == params.TypeDomain && len(top) > 0 {
			raw[name] = top[0].Domain
			button += " " + name + "=" + top[0].Domain
			continue
		}
		m.Hint = fmt.Sprintf("Start it with /ndr diagnose %s %s", code, commands.ParamUsage(pb))
		return m
	}
	// What the button will carry must pass the playbook's own checks.
	if _, err := pb.Params.Resolve(raw); err != nil {
		m.Hint = fmt.Sprintf("Start it with /ndr diagnose %s %s", code, commands.ParamUsage(pb))
		return m
	}
	if args, err := commands.ParseArgs(button); err != nil || len(args.Positional) != 1 {
		m.Hint = fmt.Sprintf("Start it with /ndr diagnose %s %s", code, commands.ParamUsage(pb))
		return m
	}
	m.Button = button
	return m
}

package lab

import (
	"io/fs"
	"strings"
)

// scenario is what a built-in organisation file says about itself.
type scenario struct {
	about string
	// playbook is the id of the playbook whose incident the scenario simulates; ""
	// when any playbook can run against it.
	playbook string
}

// scenarios lists the built-in organisation files as scenarios: every file in
// orgs/ but base, which the others extend. A file that does not load is left
// out here and reported by New with its line.
func scenarios() map[string]scenario {
	out := map[string]scenario{}
	entries, _ := fs.ReadDir(builtinOrgs, "orgs")
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		if name == "base" {
			continue
		}
		l, err := NewOrg(name, Options{})
		if err != nil {
			out[name] = scenario{about: "(does not load: " + err.Error() + ")"}
			continue
		}
		out[name] = scenario{about: l.About(), playbook: l.Playbook()}
	}
	return out
}

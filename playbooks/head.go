package playbooks

import "github.com/ndrbot/ndrbot/playbooks/params"

// Head is what choosing a playbook needs of it — for a code, or for a bounce
// whose values fill its parameters: its id, matches and parameters. Index knows
// a built-in's id and matches without building it (builtinHeads).
type Head struct {
	ID         string
	Matches    []string
	Params     params.Set
	ParamOrder []string // the file's order
}

// Head is the playbook's head.
func (pb *Playbook) Head() Head {
	return Head{ID: pb.ID, Matches: pb.Matches, Params: pb.Params, ParamOrder: pb.ParamOrder}
}

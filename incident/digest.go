package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// ProposalDigest is the SHA-256 (hex) over exactly what an approved relief will
// run: the playbook version, the relief, its target, its hosts in order, the
// command text and the arguments. An approval stores it; if any of it changes
// before the relief runs (a playbook reloaded, a target list edited), the digest
// changes and the approval is void.
func ProposalDigest(playbookVersion string, p Proposal) string {
	if p.Args == nil {
		// A stored proposal comes back without its empty arguments (omitempty):
		// no arguments and empty arguments are the same relief.
		p.Args = map[string]any{}
	}
	b, _ := json.Marshal(struct {
		Version string         `json:"version"`
		Relief  string         `json:"relief"`
		Target  string         `json:"target"`
		Hosts   []string       `json:"hosts"`
		Command string         `json:"command"`
		Args    map[string]any `json:"args"` // encoding/json sorts map keys
	}{playbookVersion, p.Relief, p.Target, p.Hosts, p.Command, p.Args})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

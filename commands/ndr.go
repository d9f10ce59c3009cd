package commands

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/ndrbot/ndrbot/bounce"
	"github.com/ndrbot/ndrbot/playbooks"
)

// NDRPasteHelp tells an admin what to give when a paste or file held no
// status code (bounce.ErrNoStatus).
const NDRPasteHelp = "Give the whole bounce — the .eml as saved from the mail client, or the text Outlook shows " +
	"with its \"Diagnostic information for administrators\" — or at least its status lines: " +
	"\"Remote Server returned '550 5.5.4 …'\", or the Status: and Diagnostic-Code: fields of its delivery report."

// NDR is a bounce read for a diagnosis, from a chat paste or a file: what it
// says, a digest of the text as given, and the playbooks that fit it. The
// text itself is not kept: the audit trail records the digest and the status
// (Record), and what the bounce says reaches a run only as parameters the
// playbook validates (ChoiceArgs).
type NDR struct {
	Bounce    *bounce.Bounce
	SHA256    string // hex, of the bytes as given
	Size      int
	Selection bounce.Selection
}

// ReadNDR parses a bounce and chooses among the catalog's playbooks. Its
// errors are bounce.Parse's (bounce.ErrNoStatus, bounce.ErrTooLarge).
func ReadNDR(data []byte, cat *playbooks.Catalog) (*NDR, error) {
	b, err := bounce.Parse(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &NDR{Bounce: b, SHA256: hex.EncodeToString(sum[:]), Size: len(data),
		Selection: bounce.Choose(b, NDRCandidates(cat))}, nil
}

// NDRProblem words a ReadNDR error for the admin; ok is false for an error
// that is not about the bounce itself.
func NDRProblem(err error) (string, bool) {
	switch {
	case errors.Is(err, bounce.ErrNoStatus):
		return "No SMTP status code (such as 550 5.5.4) in it. " + NDRPasteHelp, true
	case errors.Is(err, bounce.ErrTooLarge):
		return "The bounce is larger than 1 MiB: give it without the returned message's attachments, or only its report part.", true
	}
	return "", false
}

// NDRCandidates describes the catalog's playbooks for bounce.Choose: id,
// matches, and each parameter's type and whether it must be given.
// The heads are enough: a terminal's catalog (playbooks.Index) parses only
// the playbook chosen.
func NDRCandidates(cat *playbooks.Catalog) []bounce.Candidate {
	heads := cat.Heads()
	out := make([]bounce.Candidate, 0, len(heads))
	for _, h := range heads {
		out = append(out, ndrCandidate(h))
	}
	return out
}

func ndrCandidate(h playbooks.Head) bounce.Candidate {
	c := bounce.Candidate{ID: h.ID, Matches: h.Matches}
	for _, name := range h.ParamOrder {
		spec := h.Params[name]
		c.Params = append(c.Params, bounce.Param{Name: name, Type: string(spec.Type), Required: spec.Required && spec.Default == ""})
	}
	return c
}

// ChoiceFor is the choice for a playbook the admin named: the fitting one, else
// the closest, else one that fills nothing (fits false unless it fits).
func (n *NDR) ChoiceFor(pb *playbooks.Playbook) (c bounce.Choice, fits bool) {
	for _, c := range n.Selection.Fits {
		if c.ID == pb.ID {
			return c, true
		}
	}
	sel := bounce.Choose(n.Bounce, []bounce.Candidate{ndrCandidate(pb.Head())})
	switch {
	case len(sel.Fits) > 0:
		return sel.Fits[0], true
	case len(sel.Closest) > 0:
		return sel.Closest[0], false
	}
	return bounce.Choice{ID: pb.ID}, false
}

// ChoiceArgs are the parameters to run pb with: what the bounce filled (only
// values pb's own parameter parser accepts; the others are left out) with the
// admin's given on top. missing lists, in the playbook's order, the required
// parameters neither gave.
func ChoiceArgs(pb *playbooks.Playbook, c bounce.Choice, given map[string]string) (args map[string]string, missing []string) {
	args = map[string]string{}
	for name, v := range c.Params {
		spec, ok := pb.Params[name]
		if !ok {
			continue
		}
		if _, err := spec.Parse(v); err != nil {
			continue
		}
		args[name] = v
	}
	for k, v := range given {
		args[k] = v
	}
	for _, name := range pb.ParamOrder {
		spec := pb.Params[name]
		if spec.Required && spec.Default == "" && args[name] == "" {
			missing = append(missing, name)
		}
	}
	return args, missing
}

// orderedArgs writes args as Args in the playbook's parameter order (unknown
// keys last), for a command an admin can type.
func orderedArgs(pb *playbooks.Playbook, args map[string]string) Args {
	a := Args{Positional: []string{pb.ID}, Named: map[string]string{}}
	for _, name := range pb.ParamOrder {
		if v, ok := args[name]; ok {
			a.Named[name], a.Order = v, append(a.Order, name)
		}
	}
	var rest []string
	for k := range args {
		if _, ok := a.Named[k]; !ok {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		a.Named[k], a.Order = args[k], append(a.Order, k)
	}
	return a
}

// suggestion is the arguments to start pb with by hand: the values known, and
// a name=<type> placeholder for each missing one.
func suggestion(pb *playbooks.Playbook, args map[string]string, missing []string) string {
	s := orderedArgs(pb, args).String()
	for _, name := range missing {
		s += fmt.Sprintf(" %s=<%s>", name, pb.Params[name].Type)
	}
	return s
}

// Summary says in one line what was read: "550 5.5.4 for bob@fabrikam.com from
// ex01.contoso.com, recipient domain fabrikam.com, sender alice@contoso.com".
// Every part is the bounce's own text, stripped of control characters and
// bounded: fit to show, never to run.
func (n *NDR) Summary() string {
	b := n.Bounce
	var s strings.Builder
	s.WriteString(shown(b.Code().String()))
	if b.Recipient != "" {
		s.WriteString(" for " + shown(b.Recipient))
	}
	if b.ReportingMTA != "" {
		s.WriteString(" from " + shown(b.ReportingMTA))
	}
	if b.RecipientDomain != "" {
		s.WriteString(", recipient domain " + shown(b.RecipientDomain))
	}
	if b.Sender != "" {
		s.WriteString(", sender " + shown(b.Sender))
	}
	return s.String()
}

// Record is what the audit trail keeps of the bounce: its digest, its size
// and what was read from it — never its text.
func (n *NDR) Record() map[string]any {
	b := n.Bounce
	fits := make([]string, 0, len(n.Selection.Fits))
	for _, c := range n.Selection.Fits {
		fits = append(fits, c.ID)
	}
	return map[string]any{"sha256": n.SHA256, "bytes": n.Size, "status": b.Status, "reply": b.Reply,
		"read_from": b.StatusFrom, "fits": fits}
}

// shown bounds text from a bounce for display (see bounded).
func shown(s string) string { return bounded(s, 120) }

// ShownReason is a choice's reason fit to show (see bounded).
func ShownReason(c bounce.Choice) string { return bounded(c.Reason, 300) }

// bounded keeps graphic characters only (no newlines, escape sequences or bidi
// overrides), at most n of them, marking a cut with "…".
func bounded(s string, n int) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if !unicode.IsGraphic(r) {
			continue
		}
		if i == n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}

// auditSummary is the line a timeline shows for what a bounce started.
func (n *NDR) auditSummary(what string) string {
	return fmt.Sprintf("%s from a pasted NDR (%s, sha256 %s…)", what, shown(n.Bounce.Code().String()), n.SHA256[:12])
}

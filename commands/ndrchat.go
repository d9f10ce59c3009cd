package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/bounce"
	"github.com/ndrbot/ndrbot/playbooks"
)

// KindNDRChoice is the audit event of a choice offered in chat: a pasted
// bounce fitted several playbooks. Its payload holds the offer (ChoiceView)
// and the bounce's digest, never its text; a click on the offer is checked
// against it.
const KindNDRChoice audit.Kind = "ndr-choice"

// ChoiceTTL is how long the buttons of a choice start a diagnosis.
const ChoiceTTL = time.Hour

// Bounds on what a pasted bounce makes the bot post.
const (
	maxChoiceOptions = 8
	maxClosestShown  = 3
)

// pastedNDR reports whether `/ndr diagnose …` carries a pasted bounce rather
// than arguments, and returns the bounce's text: text over several lines
// after "diagnose", or one line whose first word is no code or playbook the
// catalog knows, that is not key=value arguments after it, and that reads as
// a bounce ("diagnose 550 5.5.4 Service unavailable"). A lone unknown word
// stays a command, answered with the known codes.
func (s *Service) pastedNDR(req Request) (string, bool) {
	verb, rest := cutWord(req.Text)
	if !strings.EqualFold(verb, "diagnose") {
		return "", false
	}
	plain := req.Plain
	if plain == "" {
		plain = req.Text
	}
	_, paste := cutWord(plain)
	// The bounce starts after the white space that ends the verb's line, so
	// that its digest is the text's as pasted.
	paste = strings.TrimLeft(paste, " \t")
	paste = strings.TrimPrefix(strings.TrimPrefix(paste, "\r"), "\n")
	rest = strings.TrimSpace(rest)
	if strings.ContainsAny(rest, "\r\n") {
		return paste, true
	}
	first, after := cutWord(rest)
	if after == "" || allNamed(after) {
		return "", false
	}
	if _, err := s.opts.Catalog().Resolve(first); err == nil {
		return "", false
	}
	if _, err := bounce.Parse([]byte(paste)); err != nil {
		return "", false
	}
	return paste, true
}

// cutWord splits s after its first word (leading white space skipped).
func cutWord(s string) (string, string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// allNamed reports whether every word of s is key=value.
func allNamed(s string) bool {
	for _, w := range strings.Fields(s) {
		if k, _, ok := strings.Cut(w, "="); !ok || !validKey(k) {
			return false
		}
	}
	return true
}

// validKey reports whether k reads as a parameter name of key=value (any case).
func validKey(k string) bool {
	_, err := argsKey(k, k)
	return err == nil
}

// diagnoseNDR answers a pasted bounce: one fitting playbook starts as
// `/ndr diagnose` does; several are offered with a button each; none gets the
// closest ones with why.
func (s *Service) diagnoseNDR(ctx context.Context, req Request, text string) Reply {
	cat := s.opts.Catalog()
	n, err := ReadNDR([]byte(text), cat)
	if err != nil {
		if msg, ok := NDRProblem(err); ok {
			return Reply{Text: "That does not read as a bounce: " + msg}
		}
		return s.internal("reading the bounce", err)
	}
	read := "Read " + n.Summary()
	fits := n.Selection.Fits
	switch {
	case len(fits) == 1:
		pb, err := cat.Resolve(fits[0].ID)
		if err != nil {
			return Reply{Text: read + ".\n" + err.Error()}
		}
		args, missing := ChoiceArgs(pb, fits[0], nil)
		if len(missing) > 0 {
			return Reply{Text: fmt.Sprintf("%s. It fits %s (%s), but does not say %s; start it with them:\n/ndr diagnose %s",
				read, pb.ID, ShownReason(fits[0]), strings.Join(missing, ", "), suggestion(pb, args, missing))}
		}
		reply, _ := s.start(ctx, req, pb, args, pb.ID, n.command(req.ChannelID, fits[0], "diagnose"))
		reply.Text = read + ".\n" + reply.Text
		return reply
	case len(fits) > 1:
		return s.offerChoice(ctx, req, n, read)
	}
	return Reply{Text: read + ".\n" + closestText(cat, n)}
}

// command is what the audit trail records of a run started from a bounce.
func (n *NDR) command(channel string, c bounce.Choice, what string) map[string]any {
	return map[string]any{"command": what, "channel": channel, "summary": n.auditSummary(what + " " + c.ID),
		"ndr": n.Record(), "playbook": c.ID, "matched": c.Matched}
}

// closestText names the playbooks nearest to a bounce none fits, with why and
// how to start each.
func closestText(cat *playbooks.Catalog, n *NDR) string {
	code := shown(n.Bounce.Code().String())
	if len(n.Selection.Closest) == 0 {
		return fmt.Sprintf("No playbook handles %s, nor a code near it; /ndr playbooks lists them.", code)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "No playbook handles %s. The closest:", code)
	for _, c := range n.Selection.Closest[:min(len(n.Selection.Closest), maxClosestShown)] {
		pb, err := cat.Resolve(c.ID)
		if err != nil {
			continue
		}
		args, missing := ChoiceArgs(pb, c, nil)
		fmt.Fprintf(&b, "\n• %s — %s: /ndr diagnose %s", pb.ID, ShownReason(c), suggestion(pb, args, missing))
	}
	return b.String()
}

// choiceRecord is the payload of a KindNDRChoice event.
type choiceRecord struct {
	Channel string         `json:"channel"`
	Summary string         `json:"summary"`
	NDR     map[string]any `json:"ndr"`
	View    ChoiceView     `json:"view"`
}

// offerChoice stores the fitting playbooks and posts one button per playbook
// to the channel. The button carries the stored choice's reference and the
// playbook; what runs is read back from the store (choosePlaybook).
func (s *Service) offerChoice(ctx context.Context, req Request, n *NDR, read string) Reply {
	cat := s.opts.Catalog()
	now := s.opts.Now()
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	v := ChoiceView{ChoiceID: hex.EncodeToString(nonce[:]), Read: n.Summary(), Requester: req.User, At: now, ExpiresAt: now.Add(ChoiceTTL)}
	for _, c := range n.Selection.Fits[:min(len(n.Selection.Fits), maxChoiceOptions)] {
		pb, err := cat.Resolve(c.ID)
		if err != nil {
			continue
		}
		args, missing := ChoiceArgs(pb, c, nil)
		o := ChoiceOption{Playbook: pb.ID, Title: pb.Title, Reason: ShownReason(c), Missing: missing,
			Command: "/ndr diagnose " + suggestion(pb, args, missing)}
		for _, name := range orderedArgs(pb, args).Order {
			o.Params = append(o.Params, Param{Name: name, Value: args[name]})
		}
		v.Options = append(v.Options, o)
	}
	if len(v.Options) == 0 {
		return Reply{Text: fmt.Sprintf("%s.\nThe playbooks that fit it (%s) cannot run here: /ndr playbooks lists those that can.", read, fitIDs(n))}
	}
	ids := make([]string, len(v.Options))
	for i, o := range v.Options {
		ids[i] = o.Playbook
	}
	ev, err := s.opts.Store.Append(ctx, audit.Record{Actor: req.User, Kind: KindNDRChoice, Payload: choiceRecord{
		Channel: req.ChannelID, Summary: n.auditSummary("offered " + strings.Join(ids, ", ")), NDR: n.Record(), View: v}})
	if err != nil {
		return s.internal("recording the choice", err)
	}
	for i := range v.Options {
		if len(v.Options[i].Missing) == 0 {
			v.Options[i].Button = choiceValue(ev.Seq, v.ChoiceID, v.Options[i].Playbook)
		}
	}
	if err := s.opts.Thread.Publish(ctx, Message{Channel: req.ChannelID, TopLevel: true, Key: ChoiceKey(v.ChoiceID), Choice: &v}); err != nil {
		return s.internal("posting the choice", err)
	}
	return Reply{Text: fmt.Sprintf("%s.\n%d playbooks fit (%s): choose one in the message the bot posted in this channel.",
		read, len(v.Options), strings.Join(ids, ", "))}
}

// choiceValue is a choice button's value: the audit event that stored the
// offer, the offer's random id, and the playbook.
func choiceValue(seq int64, id, playbook string) string {
	return fmt.Sprintf("%d:%s:%s", seq, id, playbook)
}

func parseChoiceValue(v string) (seq int64, id, playbook string, ok bool) {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 {
		return 0, "", "", false
	}
	seq, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || seq < 1 || parts[1] == "" || parts[2] == "" {
		return 0, "", "", false
	}
	return seq, parts[1], parts[2], true
}

// errNoChoice: a click names no choice the bot offered.
var errNoChoice = errors.New("no such choice")

// storedChoice reads the offer a choice button names back from the audit trail.
func (s *Service) storedChoice(ctx context.Context, seq int64, id string) (choiceRecord, error) {
	for e, err := range s.opts.Store.Events(ctx, audit.Filter{AfterSeq: seq - 1, Kinds: []audit.Kind{KindNDRChoice}, Limit: 1}) {
		if err != nil {
			return choiceRecord{}, err
		}
		var rec choiceRecord
		if e.Seq != seq || json.Unmarshal(e.Payload, &rec) != nil || rec.View.ChoiceID != id {
			break
		}
		return rec, nil
	}
	return choiceRecord{}, errNoChoice
}

// choosePlaybook handles a choice button. The value is looked up among the
// choices the bot stored: a forged one, one clicked in another channel, after
// the choice expired, or naming a playbook it did not offer starts nothing.
// The clicker must be a responder. The first click starts the playbook with
// the parameters stored with the offer, as `/ndr diagnose` does; the message
// is edited to say who chose what, and later clicks are told so.
func (s *Service) choosePlaybook(ctx context.Context, c Click) Reply {
	refuse := func(why string) {
		s.refused(ctx, c.User, "", "click", map[string]any{"action": c.Action, "value": c.Value, "channel": c.ChannelID, "why": why})
	}
	seq, id, playbook, ok := parseChoiceValue(c.Value)
	if !ok {
		refuse("malformed choice")
		return Reply{Text: "This button does not match any choice the bot offered; nothing was started."}
	}
	rec, err := s.storedChoice(ctx, seq, id)
	if errors.Is(err, errNoChoice) || err == nil && rec.Channel != c.ChannelID {
		refuse("no such choice in this channel")
		return Reply{Text: "This button does not match any choice the bot offered in this channel; nothing was started."}
	}
	if err != nil {
		return s.internal("reading the choice", err)
	}
	var opt *ChoiceOption
	for i, o := range rec.View.Options {
		if o.Playbook == playbook && len(o.Missing) == 0 {
			opt = &rec.View.Options[i]
		}
	}
	if opt == nil {
		refuse("playbook not offered")
		return Reply{Text: "That playbook was not offered for this bounce; nothing was started."}
	}
	if !s.opts.Now().Before(rec.View.ExpiresAt) {
		refuse("choice expired")
		return Reply{Text: fmt.Sprintf("This choice expired at %s; paste the bounce again. Nothing was started.", rec.View.ExpiresAt.UTC().Format("15:04 UTC"))}
	}
	ok, err = s.auth.allowed(ctx, c.User.ID, RoleResponder)
	if err != nil {
		return s.internal("authorising", err)
	}
	if !ok {
		refuse("not a responder")
		return Reply{Text: "Only responders (access.responders) may start a diagnosis; your click was recorded and nothing was started."}
	}
	pb, err := s.opts.Catalog().Resolve(opt.Playbook)
	if err != nil {
		return Reply{Text: err.Error()}
	}
	args := map[string]string{}
	for _, p := range opt.Params {
		args[p.Name] = p.Value
	}
	// Checked before the click is claimed: a playbook changed since the offer
	// leaves the choice for a corrected start by hand.
	if _, err := pb.Params.Resolve(args); err != nil {
		return Reply{Text: fmt.Sprintf("%v\nStart it by hand: /ndr diagnose %s %s", err, pb.ID, ParamUsage(pb))}
	}
	first, err := s.opts.Store.FirstSighting(ctx, "ndr-choice:"+rec.View.ChoiceID, rec.View.ExpiresAt)
	if err != nil {
		return s.internal("recording the click", err)
	}
	if !first {
		return Reply{Text: "A diagnosis was already started from this choice; follow its thread. Nothing more was started."}
	}
	reply, runID := s.start(ctx, Request{User: c.User, ChannelID: c.ChannelID}, pb, args, pb.ID, map[string]any{
		"command": "diagnose", "channel": c.ChannelID, "click": c.Action, "choice_seq": seq, "playbook": pb.ID,
		"summary": "diagnose " + pb.ID + " chosen: " + rec.Summary, "ndr": rec.NDR})
	if runID == "" {
		return reply
	}
	v := rec.View
	v.Chosen = &ChoiceMade{Playbook: pb.ID, By: c.User, At: s.opts.Now(), RunID: runID}
	if err := s.opts.Thread.Publish(ctx, Message{Channel: rec.Channel, TopLevel: true, Key: ChoiceKey(v.ChoiceID), Choice: &v}); err != nil {
		s.log.Error("choice card", "choice", v.ChoiceID, "err", err)
	}
	return reply
}

func fitIDs(n *NDR) string {
	ids := make([]string, len(n.Selection.Fits))
	for i, c := range n.Selection.Fits {
		ids[i] = c.ID
	}
	return strings.Join(ids, ", ")
}

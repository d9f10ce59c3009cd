package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ndrbot/ndrbot/incident"
)

// alertDiagnosis handles the Run diagnosis button of an NDR watch alert. The
// button's value is looked up among the alerts the bot posted to the click's
// channel — a forged value, or one clicked elsewhere, starts nothing — and the
// clicker must be a responder. The first click starts the matching playbook the
// way `/ndr diagnose <value>` does, in the alert's channel; the card is edited to
// say who started it, and later clicks are told so instead of starting another.
func (s *Service) alertDiagnosis(ctx context.Context, c Click) Reply {
	alert, err := s.opts.Store.FindWatchAlert(ctx, c.ChannelID, c.Value)
	if errors.Is(err, incident.ErrNotFound) {
		s.refused(ctx, c.User, "", "click", map[string]any{"action": c.Action, "value": c.Value, "channel": c.ChannelID, "why": "no such alert in this channel"})
		return Reply{Text: "This button does not match any NDR alert the bot posted in this channel; nothing was started."}
	}
	if err != nil {
		return s.internal("reading the alert", err)
	}
	ok, err := s.auth.allowed(ctx, c.User.ID, RoleResponder)
	if err != nil {
		return s.internal("authorising", err)
	}
	if !ok {
		s.refused(ctx, c.User, "", "click", map[string]any{"action": c.Action, "alert": alert.ID, "why": "not a responder"})
		return Reply{Text: "Only responders (access.responders) may start a diagnosis; your click was recorded and nothing was started."}
	}
	// What runs comes from the stored alert, validated like typed text.
	args, err := ParseArgs(alert.Button)
	if err != nil || len(args.Positional) != 1 {
		return s.internal("reading the alert's button", fmt.Errorf("alert %s: button %q: %v", alert.ID, alert.Button, err))
	}
	pb, err := s.opts.Catalog().Resolve(args.Positional[0])
	if err != nil {
		return Reply{Text: err.Error()}
	}
	if _, err := pb.Params.Resolve(args.Named); err != nil {
		return Reply{Text: fmt.Sprintf("%v\nStart it by hand: /ndr diagnose %s %s", err, Echo(args.Positional[0]), ParamUsage(pb))}
	}
	got, claimed, err := s.opts.Store.ClaimAlertDiagnosis(ctx, alert.ID, c.User)
	if err != nil {
		return s.internal("recording the click", err)
	}
	if !claimed {
		return Reply{Text: fmt.Sprintf("%s already started the diagnosis of this spike at %s; follow its thread. Nothing more was started.",
			got.DiagnosisBy, got.DiagnosisAt.UTC().Format("15:04 UTC"))}
	}
	reply := s.diagnose(ctx, Request{Text: "diagnose " + alert.Button, User: c.User, ChannelID: c.ChannelID}, args)
	s.alertCard(ctx, got.View, alert.ID, alert.Channel, func(v *AlertView) {
		v.DiagnosisBy, v.DiagnosisAt = got.DiagnosisBy, got.DiagnosisAt
	})
	return reply
}

// alertCard edits a posted alert in place.
func (s *Service) alertCard(ctx context.Context, stored json.RawMessage, id, channel string, change func(*AlertView)) {
	var v AlertView
	if err := json.Unmarshal(stored, &v); err != nil {
		s.log.Error("alert card", "alert", id, "err", err)
		return
	}
	v.AlertID = id
	change(&v)
	if err := s.opts.Thread.Publish(ctx, Message{Channel: channel, TopLevel: true, Key: WatchAlertKey(id), Alert: &v}); err != nil {
		s.log.Error("alert card", "alert", id, "err", err)
	}
}

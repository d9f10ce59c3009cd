package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// WriteTimeline prints events as a human-readable timeline, one line each:
//
//	2026-11-23 10:04:05.120 UTC  #12  approved          alice (U123)  restart-transport approved by alice, bob
//
// loc is the time zone to print in (nil: UTC).
func WriteTimeline(w io.Writer, events iter.Seq2[Event, error], loc *time.Location) (int64, error) {
	if loc == nil {
		loc = time.UTC
	}
	bw := bufio.NewWriter(w)
	var n int64
	for e, err := range events {
		if err != nil {
			bw.Flush()
			return n, err
		}
		fmt.Fprintf(bw, "%s  #%-5d %-16s %-24s %s\n",
			e.Time.In(loc).Format("2006-01-02 15:04:05.000 MST"), e.Seq, e.Kind, e.Actor.String(), Summary(e))
		n++
	}
	return n, bw.Flush()
}

// Summary renders an event's payload as one short line for humans.
func Summary(e Event) string {
	var p map[string]any
	if err := json.Unmarshal(e.Payload, &p); err != nil || p == nil {
		return clip(string(e.Payload), 160)
	}
	s := func(k string) string {
		switch v := p[k].(type) {
		case nil:
			return ""
		case string:
			return v
		case []any:
			parts := make([]string, 0, len(v))
			for _, x := range v {
				parts = append(parts, fmt.Sprint(x))
			}
			return strings.Join(parts, ", ")
		default:
			return fmt.Sprint(v)
		}
	}
	join := func(parts ...string) string {
		out := parts[:0]
		for _, x := range parts {
			if strings.TrimSpace(x) != "" {
				out = append(out, x)
			}
		}
		return clip(strings.Join(out, " "), 200)
	}
	switch e.Kind {
	case KindRun:
		return join("playbook", s("playbook"), "version", clip(s("version"), 12), "from", s("origin"), paramsText(p["params"]))
	case KindState:
		return join(s("from"), "→", s("to"), s("reason"))
	case KindStep:
		return join(s("step"), "on", s("target"), "["+s("hosts")+"]", "via", s("executor")+":", s("status"),
			"exit", s("exit_code"), "in", s("duration"), opt("script", clip(s("script_digest"), 12)), opt("phase", s("phase")), s("error"))
	case KindFinding:
		return join("["+s("severity")+"]", s("text"))
	case KindProposal:
		return join("propose", s("relief"), "on", "["+s("hosts")+"]", "—", s("title"), opt("blocked:", s("blocked")))
	case KindApprovalRequest:
		return join("approval", s("approval_id"), "for", s("relief"), "needs", s("required"), "approver(s)",
			yes(p["four_eyes"], "(four-eyes)"), "until", s("expires_at"))
	case KindApproval:
		return join(s("relief"), "approve vote", s("votes")+"/"+s("required"), "on", s("approval_id"))
	case KindApproved:
		return join(s("relief"), "approved by", s("approvers"), "("+s("approval_id")+")")
	case KindRejection:
		return join(s("relief"), "rejected", "("+s("approval_id")+")")
	case KindExpired:
		return join(s("relief"), "approval", s("approval_id"), "expired")
	case KindVoid:
		return join(s("relief"), "approval", s("approval_id"), "void:", s("reason"))
	case KindVoteRefused:
		return join("vote on", s("approval_id"), "refused:", s("reason"))
	case KindClaimRefused:
		return join("claim of", s("approval_id"), "refused:", s("reason"))
	case KindRelief:
		return join(s("relief"), "on", "["+s("hosts")+"]", s("state"), opt("exec", s("execution_id")), s("error"))
	case KindChatPost:
		return join(s("kind"), "to", s("channel"), opt("ref", s("external_ref")), opt("key", s("key")))
	case KindRecovery:
		return join(s("what"), s("id"), s("from"), "→", s("to"), s("note"))
	case KindEscalation:
		return join(s("reason"), opt("owner:", s("owner")))
	case KindKeyEpoch:
		return join("sealed with audit key", s("key_id"), "from here on")
	}
	for _, k := range []string{"text", "summary", "reason", "command"} {
		if v := s(k); v != "" {
			return clip(v, 200)
		}
	}
	return clip(string(e.Payload), 200)
}

func paramsText(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", k, m[k])
	}
	return b.String()
}

func opt(label, v string) string {
	if v == "" {
		return ""
	}
	return label + " " + v
}

func yes(v any, s string) string {
	if b, _ := v.(bool); b {
		return s
	}
	return ""
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

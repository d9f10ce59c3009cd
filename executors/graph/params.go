package graph

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Parameters arrive as decoded JSON/YAML values (string, float64, bool) or as Go
// values from the engine (int, time.Time). Each reader validates what it returns;
// nothing reaches a URL path or an OData filter unchecked, and filter literals are
// quoted by odataString besides.

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, incident.ErrInvalidInput)...)
}

func stringParam(p map[string]any, key string) (string, bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, invalid("parameter %q is %T, want a string", key, v)
	}
	s = strings.TrimSpace(s)
	return s, s != "", nil
}

// timeParam reads an RFC 3339 time (or a time.Time).
func timeParam(p map[string]any, key string) (time.Time, bool, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), !x.IsZero(), nil
	case string:
		if strings.TrimSpace(x) == "" {
			return time.Time{}, false, nil
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(x))
		if err != nil {
			return time.Time{}, false, invalid("parameter %q: %q is not an RFC 3339 time (2026-05-15T00:05:19Z)", key, x)
		}
		return t.UTC(), true, nil
	}
	return time.Time{}, false, invalid("parameter %q is %T, want an RFC 3339 time", key, v)
}

// emailParam reads an optional SMTP address.
func emailParam(p map[string]any, key string) (string, error) {
	s, ok, err := stringParam(p, key)
	if err != nil || !ok {
		return "", err
	}
	a, perr := mail.ParseAddress(s)
	if perr != nil || a.Address != s || !strings.Contains(s, "@") || len(s) > 320 {
		return "", invalid("parameter %q: %q is not an e-mail address", key, s)
	}
	return strings.ToLower(s), nil
}

// idRE accepts Graph object ids (GUIDs, base64-ish Outlook ids) and user principal
// names; kiota escapes path segments too, this keeps the rest out.
var idRE = lazyre.New(`^[A-Za-z0-9._@=+/-]{1,512}$`)

func idParam(p map[string]any, key string) (string, bool, error) {
	s, ok, err := stringParam(p, key)
	if err != nil || !ok {
		return "", false, err
	}
	if !idRE().MatchString(s) || strings.Contains(s, "..") {
		return "", false, invalid("parameter %q: %q is not a Graph id", key, s)
	}
	return s, true, nil
}

// serviceRE is the shape of a Microsoft 365 service name ("Exchange Online",
// "Microsoft Teams", "SharePoint Online").
var serviceRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9 .&()-]{0,79}$`)

// odataString quotes s as an OData string literal: single quotes doubled.
func odataString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// graphTime formats a time as Graph writes DateTimeOffset values in filters.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

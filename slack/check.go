package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	slackgo "github.com/slack-go/slack"
)

// SetupError says which Slack setting is missing or wrong and how to fix it. Its
// message never contains the secret itself.
type SetupError struct {
	Setting string // config key, e.g. "slack.bot_token"
	Env     string // environment variable, e.g. "SLACK_BOT_TOKEN"
	Problem string // what is wrong
	Fix     string // where to get the right value
	Err     error  // Slack's answer, when there was one
}

func (e *SetupError) Error() string {
	msg := fmt.Sprintf("%s (env %s) %s", e.Setting, e.Env, e.Problem)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + ". " + e.Fix
}

func (e *SetupError) Unwrap() error { return e.Err }

const (
	fixBotToken = "Get it from api.slack.com/apps → your app → OAuth & Permissions → " +
		"\"Bot User OAuth Token\" (starts with xoxb-; install the app to the workspace first, " +
		"reinstall after changing scopes) and set SLACK_BOT_TOKEN or NDRBOT_SLACK_BOT_TOKEN"
	fixAppToken = "Get it from api.slack.com/apps → your app → Basic Information → " +
		"App-Level Tokens → Generate Token with the scope connections:write (starts with xapp-), " +
		"enable Socket Mode, and set SLACK_APP_TOKEN or NDRBOT_SLACK_APP_TOKEN"
	fixSigningSecret = "Get it from api.slack.com/apps → your app → Basic Information → " +
		"App Credentials → Signing Secret and set SLACK_SIGNING_SECRET or NDRBOT_SLACK_SIGNING_SECRET"
)

// requiredScopes are the bot token scopes the adapter and the poster use.
const requiredScopes = "commands,chat:write,files:write,usergroups:read"

func errBotToken(problem string, err error) *SetupError {
	return &SetupError{Setting: "slack.bot_token", Env: "SLACK_BOT_TOKEN", Problem: problem, Fix: fixBotToken, Err: err}
}

func errAppToken(problem string, err error) *SetupError {
	return &SetupError{Setting: "slack.app_token", Env: "SLACK_APP_TOKEN", Problem: problem, Fix: fixAppToken, Err: err}
}

func errSigningSecret(problem string) *SetupError {
	return &SetupError{Setting: "slack.signing_secret", Env: "SLACK_SIGNING_SECRET", Problem: problem, Fix: fixSigningSecret}
}

// tokenKind names a token by its prefix only ("xoxp-"), never by its value.
func tokenKind(tok string) string {
	if i := strings.IndexByte(tok, '-'); i > 0 && i <= 5 {
		return tok[:i+1] + "…"
	}
	return "something else"
}

func checkBotTokenShape(tok string) error {
	switch {
	case tok == "":
		return errBotToken("is not set", nil)
	case !strings.HasPrefix(tok, "xoxb-"):
		return errBotToken("is not a bot token (want xoxb-…, got "+tokenKind(tok)+")", nil)
	}
	return nil
}

func checkAppTokenShape(tok string) error {
	switch {
	case tok == "":
		return errAppToken("is not set (Socket Mode needs an app-level token)", nil)
	case !strings.HasPrefix(tok, "xapp-"):
		return errAppToken("is not an app-level token (want xapp-…, got "+tokenKind(tok)+")", nil)
	}
	return nil
}

// Check verifies the credentials against Slack and fails fast, naming the setting
// that is wrong and how to get a good one: auth.test for the bot token (and its
// scopes), apps.connections.open for the app token in Socket Mode, presence of the
// signing secret in HTTP mode. All problems are reported together.
func (a *Adapter) Check(ctx context.Context) error {
	if err := a.opts.validate(); err != nil {
		return err
	}
	var errs []error
	if info, err := checkBot(ctx, a.api); err != nil {
		errs = append(errs, err)
	} else {
		a.log.Info("slack bot token ok", "team", info.Team, "team_id", info.TeamID, "bot_user", info.UserID)
		a.learnTeam(info)
	}
	if a.opts.Mode == ModeSocket {
		if _, _, err := a.api.StartSocketModeContext(ctx); err != nil {
			errs = append(errs, explainAppTokenErr(err))
		}
	}
	return errors.Join(errs...)
}

func checkBot(ctx context.Context, api *slackgo.Client) (*slackgo.AuthTestResponse, error) {
	info, err := api.AuthTestContext(ctx)
	if err != nil {
		var se slackgo.SlackErrorResponse
		if errors.As(err, &se) {
			switch se.Err {
			case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive":
				return nil, errBotToken("was rejected by Slack", err)
			}
			return nil, errBotToken("could not be verified (auth.test failed)", err)
		}
		return nil, fmt.Errorf("cannot reach the Slack Web API (check slack.api_url and the network): auth.test: %w", err)
	}
	// Slack lists a token's scopes in X-OAuth-Scopes; a proxy may drop the header.
	if scopes := info.Header.Get("X-OAuth-Scopes"); scopes != "" {
		have := strings.Split(strings.ReplaceAll(scopes, " ", ""), ",")
		var missing []string
		for s := range strings.SplitSeq(requiredScopes, ",") {
			if !slices.Contains(have, s) {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			return nil, errBotToken("lacks the scopes "+strings.Join(missing, ", ")+
				" (add them under OAuth & Permissions → Scopes, or re-create the app from slack/manifest.yaml, then reinstall)", nil)
		}
	}
	return info, nil
}

func explainAppTokenErr(err error) error {
	var se slackgo.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive":
			return errAppToken("was rejected by Slack", err)
		case "not_allowed_token_type":
			return errAppToken("is not an app-level token", err)
		case "missing_scope":
			return errAppToken("lacks the scope connections:write", err)
		}
		return errAppToken("could not open a Socket Mode connection (is Socket Mode enabled for the app?)", err)
	}
	var sc slackgo.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusNotFound {
		return errAppToken("could not open a Socket Mode connection (apps.connections.open not found: check slack.api_url)", err)
	}
	return fmt.Errorf("cannot reach the Slack Web API (check slack.api_url and the network): apps.connections.open: %w", err)
}

// learnTeam makes the bot token's workspace (its organisation for an org-wide
// install that reports no workspace) the one HTTP mode accepts requests from,
// unless slack.team_id names it.
func (a *Adapter) learnTeam(info *slackgo.AuthTestResponse) {
	if a.opts.Mode != ModeHTTP || a.opts.TeamID != "" {
		return
	}
	team := info.TeamID
	if team == "" {
		team = info.EnterpriseID
	}
	if team == "" {
		return
	}
	a.team.Store(&team)
	a.log.Info("slack http mode accepts requests from the bot token's team only (auth.test); set slack.team_id to choose another",
		"team_id", team)
}

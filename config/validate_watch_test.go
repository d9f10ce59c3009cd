package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One fixture per failure of the watch section: each must produce exactly one
// problem, on the named key, and never echo a secret.
func TestValidateWatchFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		env     []string
		key     string
		msg     string
		origin  string
	}{
		{fixture: "watch-mailbox-missing", key: "watch.mailbox", msg: "required: the postmaster, journal or shared mailbox"},
		{fixture: "watch-mailbox-bad", key: "watch.mailbox", msg: `"post master" is neither a user principal name`},
		{fixture: "watch-folder-bad", key: "watch.folder", msg: `"inbox/../sent" is not a folder name`},
		{fixture: "watch-target-unknown", key: "watch.target", msg: `target "m365" is not configured: add a graph target`},
		{fixture: "watch-target-kind", key: "watch.target", msg: `target "eop" is kind probe`},
		{fixture: "watch-target-no-app", key: "watch.target", msg: `graph target "graph" has no app registration yet`},
		{fixture: "watch-mode", key: "watch.mode", msg: `"push" must be poll or notifications`, origin: "watch-mode.yaml:12"},
		{fixture: "watch-poll-interval", key: "watch.poll_interval", msg: "2s is out of range 10s..1h"},
		{fixture: "watch-window", key: "watch.window", msg: "30s is out of range 1m..24h"},
		{fixture: "watch-threshold", key: "watch.threshold", msg: "0 must be at least 1"},
		{fixture: "watch-cooldown", key: "watch.cooldown", msg: "2m0s is shorter than watch.window (5m0s): one storm would alert more than once"},
		{fixture: "watch-no-channel", key: "watch.channel", msg: "set watch.channel or slack.escalation_channel"},
		{fixture: "watch-url-in-poll", key: "watch.notification_url", msg: "only used in notifications mode"},
		{fixture: "watch-notifications-no-url", key: "watch.notification_url", msg: "required in notifications mode"},
		{fixture: "watch-notifications-http-url", key: "watch.notification_url", msg: "is not an https URL"},
		{fixture: "watch-notifications-no-client-state", key: "watch.client_state", msg: "required in notifications mode: set NDRBOT_WATCH_CLIENT_STATE or watch.client_state_file"},
		{fixture: "watch-client-state-in-file", key: "watch.client_state", msg: "never the YAML itself: remove it and set NDRBOT_WATCH_CLIENT_STATE or watch.client_state_file", origin: "watch-client-state-in-file.yaml:14"},
		{fixture: "watch-notifications-listen", key: "watch.listen", msg: `"8081" is not host:port`},
		{fixture: "watch-notifications-no-client-state", env: []string{"NDRBOT_WATCH_CLIENT_STATE=" + strings.Repeat("x", 129)},
			key: "watch.client_state", msg: "is 129 characters; Graph accepts at most 128", origin: "env NDRBOT_WATCH_CLIENT_STATE"},
	}
	for _, tt := range tests {
		name := tt.fixture
		if len(tt.env) > 0 {
			name += "+env"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, filepath.Join("testdata", "invalid", tt.fixture+".yaml"), tt.env...)
			err := cfg.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != 1 {
				t.Fatalf("want exactly one problem, got %d:\n%v", len(ve.Problems), err)
			}
			p := ve.Problems[0]
			if p.Key != tt.key {
				t.Errorf("key = %q, want %q (%v)", p.Key, tt.key, err)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", p.Msg, tt.msg)
			}
			if !strings.HasSuffix(p.Origin, tt.origin) {
				t.Errorf("origin = %q, want …%q", p.Origin, tt.origin)
			}
			for _, secret := range []string{"hunter2", strings.Repeat("x", 129)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestWatchDefaultsAndEnv(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, filepath.Join("testdata", "watch-valid.yaml"))
	if err := cfg.Validate(); err != nil {
		t.Fatalf("watch-valid.yaml: %v", err)
	}
	w := cfg.Watch
	if !w.Enabled || w.Mailbox != "postmaster@contoso.com" || w.Folder != "inbox" || w.Target != "graph" || w.Mode != WatchPoll ||
		w.PollInterval != 60*time.Second || w.Window != 10*time.Minute || w.Threshold != 30 || w.Cooldown != time.Hour {
		t.Errorf("watch = %+v", w)
	}
	if got := cfg.AlertChannel(); got != "C0ESC" {
		t.Errorf("AlertChannel = %q, want slack.escalation_channel", got)
	}

	// Every key from the environment, notifications mode included.
	cfg = mustLoad(t, filepath.Join("testdata", "watch-valid.yaml"),
		"NDRBOT_WATCH_MODE=notifications", "NDRBOT_WATCH_NOTIFICATION_URL=https://ndrbot.contoso.com/graph/notify",
		"NDRBOT_WATCH_CLIENT_STATE=s3cret-state", "NDRBOT_WATCH_CHANNEL=C0NDR", "NDRBOT_WATCH_FOLDER=JunkEmail",
		"NDRBOT_WATCH_POLL_INTERVAL=5m", "NDRBOT_WATCH_THRESHOLD=50", "NDRBOT_WATCH_LISTEN=127.0.0.1:9000")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("notifications from env: %v", err)
	}
	w = cfg.Watch
	if w.Mode != WatchNotifications || w.ClientState.Reveal() != "s3cret-state" || w.Folder != "JunkEmail" ||
		w.PollInterval != 5*time.Minute || w.Threshold != 50 || w.Listen != "127.0.0.1:9000" {
		t.Errorf("watch = %+v", w)
	}
	if got := cfg.AlertChannel(); got != "C0NDR" {
		t.Errorf("AlertChannel = %q, want watch.channel", got)
	}

	// Disabled (the default), nothing is checked: the bot starts without a mailbox.
	def := Default()
	if def.Watch.Enabled || def.Watch.Threshold != 20 || def.Watch.Window != 5*time.Minute || def.Watch.Cooldown != 30*time.Minute ||
		def.Watch.PollInterval != time.Minute || def.Watch.Mode != WatchPoll || def.Watch.Folder != "inbox" {
		t.Errorf("defaults = %+v", def.Watch)
	}
}

package config_test

import (
	"path/filepath"
	"testing"
	"time"

	. "github.com/ndrbot/ndrbot/config"
)

func TestWatchDefaultsAndEnv(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, filepath.Join("testdata", "watch-valid.yaml"))
	if err := cfg.Validate(kinds()); err != nil {
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
	if err := cfg.Validate(kinds()); err != nil {
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
	def := Default(kinds())
	if def.Watch.Enabled || def.Watch.Threshold != 20 || def.Watch.Window != 5*time.Minute || def.Watch.Cooldown != 30*time.Minute ||
		def.Watch.PollInterval != time.Minute || def.Watch.Mode != WatchPoll || def.Watch.Folder != "inbox" {
		t.Errorf("defaults = %+v", def.Watch)
	}
}

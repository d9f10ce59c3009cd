// Package deploy holds no Go code: its tests check the deployment files beside
// them (helm/ndrbot, systemd/) against the bot's configuration, offline and without
// Helm or systemd (both are used when they are on PATH).
package deploy

import (
	"strings"
	"testing"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/registry"
)

// configKinds are the target kinds the bot registers, which Load and Validate
// take their per-kind defaults and checks from, as `bot` does.
func configKinds(t *testing.T) config.Kinds {
	t.Helper()
	kinds, err := registry.Kinds().Config()
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

// settingOf maps every NDRBOT_* variable the chart or the unit sets (besides
// NDRBOT_CONFIG, which names the file) to the setting it overrides. A new variable
// in a template or the unit needs a line here; each line is held against
// config.EnvName and against the loader (Load must record the variable as the
// origin of that key), so a setting renamed in config/ fails here, not in
// production, where the bot would only warn that the variable is no setting and
// run without it.
var settingOf = map[string]string{
	"NDRBOT_SLACK_MODE":                       "slack.mode",
	"NDRBOT_SLACK_LISTEN":                     "slack.listen",
	"NDRBOT_SLACK_BOT_TOKEN_FILE":             "slack.bot_token_file",
	"NDRBOT_SLACK_APP_TOKEN_FILE":             "slack.app_token_file",
	"NDRBOT_SLACK_SIGNING_SECRET_FILE":        "slack.signing_secret_file",
	"NDRBOT_STORE_DRIVER":                     "store.driver",
	"NDRBOT_STORE_PATH":                       "store.path",
	"NDRBOT_STORE_DSN_FILE":                   "store.dsn_file",
	"NDRBOT_STORE_AUDIT_KEY_FILE":             "store.audit_key_file",
	"NDRBOT_STORE_CHECKPOINTS_FILE":           "store.checkpoints.file",
	"NDRBOT_PLAYBOOKS_DIR":                    "playbooks.dir",
	"NDRBOT_WATCH_LISTEN":                     "watch.listen",
	"NDRBOT_SERVER_LISTEN":                    "server.listen",
	"NDRBOT_LOG_LEVEL":                        "log.level",
	"NDRBOT_TARGETS_EXCHANGE_KEYTAB_FILE":     "targets.exchange.keytab_file",
	"NDRBOT_TARGETS_EXCHANGE_PASSWORD_FILE":   "targets.exchange.password_file",
	"NDRBOT_TARGETS_JEA_KEYTAB_FILE":          "targets.jea.keytab_file",
	"NDRBOT_TARGETS_JEA_PASSWORD_FILE":        "targets.jea.password_file",
	"NDRBOT_TARGETS_GRAPH_CLIENT_SECRET_FILE": "targets.graph.client_secret_file",
}

// configEnv names the config file (config/load.go's NDRBOT_CONFIG).
const configEnv = "NDRBOT_CONFIG"

func TestSettingOfMatchesEnvName(t *testing.T) {
	for name, key := range settingOf {
		if got := config.EnvName(key); got != name {
			t.Errorf("%s: config.EnvName(%q) is %s", name, key, got)
		}
	}
}

// checkEnvSettings loads env (NAME=value pairs, NDRBOT_CONFIG naming an existing
// file or absent) and checks that every NDRBOT_* variable is a setting the loader
// applied to the key settingOf names. It returns the loaded configuration.
func checkEnvSettings(t *testing.T, where string, env []string) config.Config {
	t.Helper()
	cfg, src, err := config.Load(config.LoadOptions{Env: env, Kinds: configKinds(t)})
	if err != nil {
		t.Fatalf("%s: the bot would refuse this environment:\n%v", where, err)
	}
	for _, w := range src.Warnings {
		t.Errorf("%s: the bot would ignore a variable: %s", where, w)
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "NDRBOT_") || name == configEnv || value == "" {
			continue
		}
		key, ok := settingOf[name]
		if !ok {
			t.Errorf("%s: %s is not in settingOf: add the setting it overrides", where, name)
			continue
		}
		if got := cfg.Origin(key); got != "env "+name {
			t.Errorf("%s: %s does not set %s (its origin is %q)", where, name, key, got)
		}
	}
	return cfg
}

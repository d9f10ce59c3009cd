package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/ndrbot/ndrbot/config"
)

// One fixture per failure: each must produce exactly one problem, on the named key.
func TestValidateFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		env     []string
		key     string
		msg     string
		origin  string // suffix of Problem.Origin, when the value was set somewhere
	}{
		{fixture: "winrm-endpoint-scheme", key: "targets.exchange.endpoints[1]", msg: `"ftp://x" is not an http(s) WS-Management URL`, origin: "winrm-endpoint-scheme.yaml:5"},
		{fixture: "winrm-endpoint-credentials", key: "targets.exchange.endpoints[0]", msg: "carries credentials"},
		{fixture: "endpoint-duplicate", key: "targets.exchange.endpoints[1]", msg: "repeats endpoints[0]"},
		{fixture: "endpoint-port", key: "targets.exchange.endpoints[0]", msg: "port 70000 out of range"},
		{fixture: "store-driver", key: "store.driver", msg: `"mysql" must be sqlite or postgres`},
		{fixture: "slack-team-id", key: "slack.team_id", msg: `"contoso" is not a Slack workspace id (T…) or Enterprise Grid organisation id (E…)`, origin: "slack-team-id.yaml:2"},
		{fixture: "slack-app-id", key: "slack.app_id", msg: `"T0123" is not a Slack app id (A…`},
		{fixture: "store-postgres-no-dsn", key: "store.dsn", msg: "driver postgres needs a DSN: set NDRBOT_STORE_DSN"},
		{fixture: "auth", key: "targets.exchange.auth", msg: `must be ntlm or basic, not "kerberos"`},
		{fixture: "unknown-kind", key: "targets.dmz.kind", msg: `unknown kind "foo" (exchange|jea|winrm|probe|graph|exo|lab)`},
		{fixture: "missing-kind", key: "targets.dmz.kind", msg: "required (exchange|jea|winrm|probe|graph|exo|lab)"},
		{fixture: "declared-empty", key: "targets.sim.kind", msg: "required"},
		{fixture: "max-concurrency-high", key: "targets.exchange.max_concurrency", msg: "19 is out of range 1..18"},
		{fixture: "max-concurrency-zero", key: "targets.exchange.max_concurrency", msg: "0 is out of range 1..18"},
		{fixture: "max-concurrency-negative", key: "targets.eop.max_concurrency", msg: "must not be negative"},
		{fixture: "operation-timeout", key: "targets.exchange.operation_timeout", msg: "500ms must be at least 1s"},
		{fixture: "max-output-bytes", key: "targets.exchange.max_output_bytes", msg: "must be positive"},
		{fixture: "probe-endpoint", key: "targets.eop.endpoints[0]", msg: "is not host[:port]"},
		{fixture: "probe-port", key: "targets.eop.endpoints[0]", msg: "port 99999 out of range"},
		{fixture: "probe-timeout", key: "targets.eop.timeout", msg: "must be positive"},
		{fixture: "helo-name", key: "targets.eop.helo_name", msg: "is not a host name"},
		{fixture: "ca-file-missing", key: "targets.exchange.ca_file", msg: "no such file"},
		{fixture: "ca-file-not-pem", key: "targets.exchange.ca_file", msg: "holds no PEM certificate"},
		{fixture: "insecure-with-http", key: "targets.exchange.insecure_skip_verify", msg: "only applies to https"},
		{fixture: "insecure-with-ca", key: "targets.exchange.insecure_skip_verify", msg: "set one or the other"},
		{fixture: "basic-over-http", key: "targets.exchange.allow_unencrypted", msg: "basic auth over http"},
		{fixture: "username-missing", key: "targets.exchange.username", msg: "required when endpoints are set"},
		{fixture: "password-missing", key: "targets.exchange.password", msg: "set NDRBOT_TARGETS_EXCHANGE_PASSWORD or targets.exchange.password_file"},
		{fixture: "secret-in-file", key: "targets.exchange.password", msg: "secrets come from env or *_file, never the YAML itself", origin: "secret-in-file.yaml:6"},
		{fixture: "secret-and-file", env: []string{"NDRBOT_TARGETS_EXCHANGE_PASSWORD=from-env"}, key: "targets.exchange.password", msg: "set together with targets.exchange.password_file", origin: "env NDRBOT_TARGETS_EXCHANGE_PASSWORD"},
		{fixture: "password-file-missing", key: "targets.exchange.password_file", msg: "no such file"},
		{fixture: "password-file-empty", key: "targets.exchange.password_file", msg: "is empty"},
		{fixture: "not-used-by-kind", key: "targets.eop.auth", msg: "not used by kind probe"},
		{fixture: "target-name-collision", key: "targets.ex_01", msg: `collides with target "ex-01"`},
		{fixture: "log-level", key: "log.level", msg: `"verbose" must be debug, info, warn or error`, origin: "log-level.yaml:2"},
		{fixture: "log-format", key: "log.format", msg: `"xml" must be text or json`},
		{fixture: "access-cli-four-eyes", key: "access.cli_four_eyes", msg: `"ask" must be refuse or allow`, origin: "access-cli-four-eyes.yaml:3"},
		{fixture: "lab-time-scale", key: "lab.time_scale", msg: "must be a number of at least 1"},
		{fixture: "lab-latency", key: "lab.latency", msg: "must not be negative"},
		{fixture: "playbooks-dir-missing", key: "playbooks.dir", msg: "no such file"},
		{fixture: "playbooks-dir-file", key: "playbooks.dir", msg: "is not a directory"},
		// exchange and jea targets (remote PowerShell)
		{fixture: "exchange-auth", key: "targets.exchange.auth", msg: `must be kerberos, basic or ntlm, not "negotiate"`},
		{fixture: "exchange-kerberos-no-credential", key: "targets.exchange.password", msg: "targets.exchange.keytab_file"},
		{fixture: "exchange-keytab-and-password", key: "targets.exchange.keytab_file", msg: "set a keytab or a password, not both"},
		{fixture: "exchange-keytab-missing", key: "targets.exchange.keytab_file", msg: "no such file"},
		{fixture: "exchange-spn-without-kerberos", key: "targets.exchange.spn", msg: "only used with auth: kerberos"},
		{fixture: "exchange-endpoint-scheme", key: "targets.exchange.endpoints[0]", msg: "is not an http(s) remote PowerShell URL (e.g. http://ex01.contoso.com/PowerShell)"},
		{fixture: "exchange-preamble", key: "targets.exchange.preamble", msg: "not used by kind exchange (only by winrm)"},
		{fixture: "jea-configuration-name", key: "targets.jea.configuration_name", msg: "is not a session configuration name"},
		// graph targets
		{fixture: "graph-endpoint", key: "targets.m365.endpoints", msg: "not used by kind graph: cloud (global|usgov|usgovdod|china) or graph_url"},
		{fixture: "graph-tenant-missing", key: "targets.m365.tenant_id", msg: "required: the directory (tenant) ID"},
		{fixture: "graph-tenant-common", key: "targets.m365.tenant_id", msg: `"common" is a multi-tenant alias`},
		{fixture: "graph-tenant-invalid", key: "targets.m365.tenant_id", msg: `"contoso tenant" is neither a GUID nor a domain name`},
		{fixture: "graph-client-id", key: "targets.m365.client_id", msg: `"ndrbot-app" is not a GUID`},
		{fixture: "graph-no-credential", key: "targets.m365.client_secret", msg: "a credential is required: set NDRBOT_TARGETS_M365_CLIENT_SECRET, targets.m365.client_secret_file or targets.m365.certificate_file"},
		{fixture: "graph-two-credentials", key: "targets.m365.certificate_file", msg: "configure exactly one credential"},
		{fixture: "graph-secret-in-file", key: "targets.m365.client_secret", msg: "never the YAML itself: remove it and set NDRBOT_TARGETS_M365_CLIENT_SECRET or targets.m365.client_secret_file", origin: "graph-secret-in-file.yaml:6"},
		{fixture: "graph-secret-and-file", env: []string{"NDRBOT_TARGETS_M365_CLIENT_SECRET=from-env"}, key: "targets.m365.client_secret", msg: "set together with targets.m365.client_secret_file", origin: "env NDRBOT_TARGETS_M365_CLIENT_SECRET"},
		{fixture: "graph-secret-file-missing", key: "targets.m365.client_secret_file", msg: "no such file"},
		{fixture: "graph-cert-no-key", key: "targets.m365.certificate_file", msg: "holds a certificate but no private key"},
		{fixture: "graph-cert-not-pem", key: "targets.m365.certificate_file", msg: "holds no PEM certificate or key"},
		{fixture: "graph-cert-ec", key: "targets.m365.certificate_file", msg: "non-RSA certificate"},
		{fixture: "graph-cert-legacy", key: "targets.m365.certificate_file", msg: "legacy PEM key encryption"},
		{fixture: "graph-cert-encrypted", key: "targets.m365.certificate_password", msg: "is encrypted: set NDRBOT_TARGETS_M365_CERTIFICATE_PASSWORD or targets.m365.certificate_password_file"},
		{fixture: "graph-cert-password-alone", key: "targets.m365.certificate_password", msg: "only applies to certificate_file"},
		{fixture: "graph-cloud", key: "targets.m365.cloud", msg: `"germany" must be one of global, usgov, usgovdod, china`, origin: "graph-cloud.yaml:7"},
		{fixture: "graph-url-http", key: "targets.m365.graph_url", msg: "must be https (plain http only to localhost)"},
		{fixture: "graph-authority-http", key: "targets.m365.authority_url", msg: "must be https: the identity library only talks to an https authority"},
		{fixture: "graph-authority-path", key: "targets.m365.authority_url", msg: "give the authority host only"},
		{fixture: "graph-key-on-winrm", key: "targets.exchange.tenant_id", msg: "not used by kind winrm (only by graph, exo)"},
		// exo targets (Exchange Online)
		{fixture: "exo-endpoint", key: "targets.exo.endpoints", msg: "not used by kind exo: cloud (global|usgov|usgovdod|china) says where Exchange Online is"},
		{fixture: "exo-no-credential", key: "targets.exo.client_secret", msg: "a credential is required: set NDRBOT_TARGETS_EXO_CLIENT_SECRET, targets.exo.client_secret_file or targets.exo.certificate_file"},
		{fixture: "exo-tenant-missing", key: "targets.exo.tenant_id", msg: "required: the directory (tenant) ID"},
		{fixture: "exo-cloud", key: "targets.exo.cloud", msg: `"germany" must be one of global, usgov, usgovdod, china`, origin: "exo-cloud.yaml:7"},
		{fixture: "exo-graph-url", key: "targets.exo.graph_url", msg: "not used by kind exo (only by graph)"},
		{fixture: "exo-secret-in-file", key: "targets.exo.client_secret", msg: "never the YAML itself: remove it and set NDRBOT_TARGETS_EXO_CLIENT_SECRET or targets.exo.client_secret_file", origin: "exo-secret-in-file.yaml:6"},
		{fixture: "exo-timeout", key: "targets.exo.timeout", msg: "-5s must not be negative"},
		{fixture: "module-endpoint-on-graph", key: "targets.m365.allow_module_endpoint", msg: "not used by kind graph (only by exo)"},
		// the NDR watch
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
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "invalid", tt.fixture+".yaml")
			cfg := mustLoad(t, path, tt.env...)
			err := cfg.Validate(kinds())
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
			if !strings.HasPrefix(err.Error(), tt.key+": ") {
				t.Errorf("error %q does not start with the key", err)
			}
			// Where the value came from is part of the message.
			if !strings.HasSuffix(p.Origin, tt.origin) || !strings.Contains(err.Error(), "(from "+p.Origin+")") && p.Origin != "" {
				t.Errorf("origin = %q, want …%q (%v)", p.Origin, tt.origin, err)
			}
			// Problems never echo a secret.
			for _, secret := range []string{"hunter2", "from-env", "s3cret-from-file", "pem-pass-phrase", "PRIVATE KEY", strings.Repeat("x", 129)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/invalid/many.yaml")
	err := cfg.Validate(kinds())
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	got := map[string]bool{}
	for _, p := range ve.Problems {
		got[p.Key] = true
	}
	for _, key := range []string{
		"targets.exchange.endpoints[1]",
		"targets.exchange.auth",
		"targets.exchange.max_concurrency",
		"targets.exchange.password",
		"targets.net.kind",
		"log.level",
		"log.format",
		"lab.time_scale",
	} {
		if !got[key] {
			t.Errorf("no problem reported for %s", key)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(ve.Problems) {
		t.Errorf("Error() has %d lines for %d problems", n, len(ve.Problems))
	}
	// Each problem is reachable through errors.As on the joined error.
	var p Problem
	if !errors.As(err, &p) {
		t.Error("errors.As(err, *Problem) failed")
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	t.Parallel()
	// With no origins (a Config built by a test or by code), a password set directly is
	// fine: only the file is forbidden from holding one.
	cfg := Default(kinds())
	ex := cfg.Targets["exchange"]
	ex.Endpoints = []string{"https://ex01.contoso.com:5986/wsman"}
	ex.Username = "svc"
	ex.Password = "pw"
	cfg.Targets["exchange"] = ex
	if err := cfg.Validate(kinds()); err != nil {
		t.Errorf("Validate = %v", err)
	}
	cfg.Targets["Bad.Name"] = Target{Kind: KindLab}
	if err := cfg.Validate(kinds()); err == nil || !strings.Contains(err.Error(), `targets.Bad.Name: "Bad.Name" is not a valid target name`) {
		t.Errorf("Validate = %v", err)
	}
}

func TestValidateHintsAtMisspeltTargetInEnv(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/log-only.yaml", "NDRBOT_TARGETS_EXCHNGE_PASSWORD=pw")
	err := cfg.Validate(kinds())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"targets.exchnge.kind: required", "defined only by NDRBOT_TARGETS_EXCHNGE_PASSWORD"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestRequireEndpoints(t *testing.T) {
	t.Parallel()
	cfg := Default(kinds())
	err := cfg.Targets["exchange"].RequireEndpoints("exchange")
	if !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("err = %v, want ErrNoEndpoints", err)
	}
	for _, want := range []string{"targets.exchange.endpoints", "NDRBOT_TARGETS_EXCHANGE_ENDPOINTS=", "http://", "/PowerShell"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := cfg.Targets["eop"].RequireEndpoints("eop"); err != nil {
		t.Errorf("eop: %v", err)
	}
	err = Target{Kind: KindProbe}.RequireEndpoints("mx-west")
	if err == nil || !strings.Contains(err.Error(), "NDRBOT_TARGETS_MX_WEST_ENDPOINTS") || !strings.Contains(err.Error(), ":25") {
		t.Errorf("probe: %v", err)
	}
}

func TestTargetLookup(t *testing.T) {
	t.Parallel()
	cfg := Default(kinds())
	if tg, err := cfg.Target("eop"); err != nil || tg.Kind != KindProbe {
		t.Errorf("Target(eop) = %+v, %v", tg, err)
	}
	_, err := cfg.Target("exchnge")
	if !errors.Is(err, ErrUnknownTarget) || !strings.Contains(err.Error(), "eop, exchange") {
		t.Errorf("Target(exchnge) error = %v", err)
	}
}

// Package config defines ndrbot's configuration: defaults, the YAML file, NDRBOT_*
// environment overrides, secrets from env or *_file, and validation.
//
// Layers, lowest first: the embedded defaults (Default), one YAML file, then the
// environment. Load merges them and decodes; Validate checks the result and reports
// every problem at once. Load does not validate, so `ndrbot config check` can print a
// configuration and its problems side by side.
//
// Adding a section is adding a struct field to Config (with mapstructure and yaml
// tags) and its defaults to defaults(): the file checker, the NDRBOT_* mapping, the
// printer and the secret rules follow the Go types by reflection.
//
// Struct tags the loader understands besides mapstructure/yaml:
//
//	config:"path"              relative values are resolved against the config file's
//	                           directory (file) or LoadOptions.WorkDir (env)
//	env:"SLACK_BOT_TOKEN,..."  extra environment variable names for a key outside maps;
//	                           the NDRBOT_* name wins when both are set
//
// A Secret field named X may have a sibling string field X_file: the secret comes from
// the environment or that file, never from the YAML itself, and never from both.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Target kinds.
const (
	KindWinRM = "winrm"
	// KindExchange: Exchange cmdlets over remote PowerShell (PSRP) to /PowerShell,
	// configuration Microsoft.Exchange — the way Microsoft supports.
	KindExchange = "exchange"
	// KindJEA: a Just Enough Administration endpoint (PSRP) for the few
	// Windows-level actions (service restart, port-25 test from a server).
	KindJEA   = "jea"
	KindProbe = "probe"
	KindGraph = "graph"
	KindLab   = "lab"
	// KindEXO: Exchange Online cmdlets over HTTPS, app-only — the Exchange Online
	// Admin API, and the PowerShell V3 module's InvokeCommand endpoint only when
	// allow_module_endpoint is set.
	KindEXO = "exo"
)

// Sentinel errors, for errors.Is.
var (
	// ErrUnknownTarget: a playbook or command named a target that is not configured.
	ErrUnknownTarget = errors.New("unknown target")
	// ErrNoEndpoints: the target exists but has no endpoints yet.
	ErrNoEndpoints = errors.New("no endpoints configured")
)

// Config is the whole effective configuration.
type Config struct {
	Targets   map[string]Target `mapstructure:"targets" yaml:"targets"`
	Playbooks Playbooks         `mapstructure:"playbooks" yaml:"playbooks"`
	Lab       Lab               `mapstructure:"lab" yaml:"lab"`
	Store     Store             `mapstructure:"store" yaml:"store"`
	Slack     Slack             `mapstructure:"slack" yaml:"slack"`
	Access    Access            `mapstructure:"access" yaml:"access"`
	Log       Log               `mapstructure:"log" yaml:"log"`
	Watch     Watch             `mapstructure:"watch" yaml:"watch"`
	Server    Server            `mapstructure:"server" yaml:"server"`

	// origins maps a leaf key ("targets.exchange.password") to where its value came
	// from: "default", "FILE:LINE" or "env NAME". Validate needs it to reject secrets
	// written into the YAML; Print shows it. Nil for a Config built in code.
	origins map[string]string
}

// Target is a named group of endpoints a playbook step runs against.
type Target struct {
	// Kind is winrm, probe, graph or lab.
	Kind string `mapstructure:"kind" yaml:"kind"`
	// Endpoints: WS-Management URLs (winrm, https://host:5986/wsman), host[:port]
	// (probe), or simulated host names (lab). Graph targets have none: cloud and
	// graph_url say where Graph is.
	Endpoints []string `mapstructure:"endpoints" yaml:"endpoints"`

	// WinRM and PSRP (exchange, jea).
	Auth               string        `mapstructure:"auth" yaml:"auth"` // winrm: ntlm | basic; exchange, jea: kerberos | basic | ntlm
	Username           string        `mapstructure:"username" yaml:"username"`
	Password           Secret        `mapstructure:"password" yaml:"password"`
	PasswordFile       string        `mapstructure:"password_file" yaml:"password_file" config:"path"`
	CAFile             string        `mapstructure:"ca_file" yaml:"ca_file" config:"path"`
	InsecureSkipVerify bool          `mapstructure:"insecure_skip_verify" yaml:"insecure_skip_verify"`
	AllowUnencrypted   bool          `mapstructure:"allow_unencrypted" yaml:"allow_unencrypted"`
	MaxConcurrency     int           `mapstructure:"max_concurrency" yaml:"max_concurrency"`
	Preamble           string        `mapstructure:"preamble" yaml:"preamble"`
	OperationTimeout   time.Duration `mapstructure:"operation_timeout" yaml:"operation_timeout"`
	MaxOutputBytes     int           `mapstructure:"max_output_bytes" yaml:"max_output_bytes"`

	// PSRP (exchange, jea). ConfigurationName is the session configuration
	// (Microsoft.Exchange for exchange; the registered JEA name for jea). The
	// runspace pool of an endpoint closes after IdleTimeout without a pipeline.
	ConfigurationName string        `mapstructure:"configuration_name" yaml:"configuration_name"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout"`
	// Kerberos: a password (env or password_file) or a keytab; krb5.conf for the
	// realm's KDCs; the service principal, HTTP/<endpoint host> when empty.
	KeytabFile string `mapstructure:"keytab_file" yaml:"keytab_file" config:"path"`
	Krb5Conf   string `mapstructure:"krb5_conf" yaml:"krb5_conf" config:"path"`
	Realm      string `mapstructure:"realm" yaml:"realm"`
	SPN        string `mapstructure:"spn" yaml:"spn"`

	// Probe.
	Timeout  time.Duration `mapstructure:"timeout" yaml:"timeout"`
	HeloName string        `mapstructure:"helo_name" yaml:"helo_name"`

	// Graph (Microsoft 365): an app registration's client credentials. Exactly one
	// credential: client_secret (env or client_secret_file) or certificate_file.
	TenantID         string `mapstructure:"tenant_id" yaml:"tenant_id"` // GUID or verified domain
	ClientID         string `mapstructure:"client_id" yaml:"client_id"` // application (client) ID, a GUID
	ClientSecret     Secret `mapstructure:"client_secret" yaml:"client_secret"`
	ClientSecretFile string `mapstructure:"client_secret_file" yaml:"client_secret_file" config:"path"`
	// CertificateFile is PEM holding the certificate and its private key; an
	// encrypted key needs certificate_password (env or certificate_password_file).
	CertificateFile         string `mapstructure:"certificate_file" yaml:"certificate_file" config:"path"`
	CertificatePassword     Secret `mapstructure:"certificate_password" yaml:"certificate_password"`
	CertificatePasswordFile string `mapstructure:"certificate_password_file" yaml:"certificate_password_file" config:"path"`
	// Cloud picks the Graph base URL and the authority host together: global,
	// usgov (GCC High), usgovdod (DoD) or china (21Vianet). GraphURL and AuthorityURL
	// override either one (proxies, tests).
	Cloud        string `mapstructure:"cloud" yaml:"cloud"`
	GraphURL     string `mapstructure:"graph_url" yaml:"graph_url"`
	AuthorityURL string `mapstructure:"authority_url" yaml:"authority_url"`
	// ClientState is the clientState the app's notification receiver checks: the
	// graph-503 playbook's recreate-subscription relief gives it to the subscription
	// it creates. A secret (env or client_state_file), handed to the executor by the
	// wiring, never through a playbook: a playbook's data is shown for approval.
	ClientState     Secret `mapstructure:"client_state" yaml:"client_state"`
	ClientStateFile string `mapstructure:"client_state_file" yaml:"client_state_file" config:"path"`

	// Exchange Online (exo): the app registration keys above (tenant_id,
	// client_id, one credential, cloud, authority_url). AllowModuleEndpoint lets
	// cmdlets the Admin API does not cover go to the InvokeCommand endpoint of
	// the Exchange Online PowerShell V3 module, which Microsoft does not document
	// for direct use.
	AllowModuleEndpoint bool `mapstructure:"allow_module_endpoint" yaml:"allow_module_endpoint"`
}

// Graph clouds a graph target's cloud key accepts; executors/graph maps each to its
// Graph base URL and authority host.
const (
	CloudGlobal   = "global"
	CloudUSGov    = "usgov"
	CloudUSGovDoD = "usgovdod"
	CloudChina    = "china"
)

// GraphClouds lists the accepted values of a graph target's cloud key.
func GraphClouds() []string { return []string{CloudGlobal, CloudUSGov, CloudUSGovDoD, CloudChina} }

// Playbooks says where playbooks beyond the built-in ones come from.
type Playbooks struct {
	// Dir adds or overrides playbooks (by id) from *.yaml files.
	Dir string `mapstructure:"dir" yaml:"dir" config:"path"`
}

// Lab configures the simulated organisation.
type Lab struct {
	// TimeScale divides playbook waits in lab runs so a relief and its
	// verification finish in seconds (5m / 300 = 1s).
	TimeScale float64 `mapstructure:"time_scale" yaml:"time_scale"`
	// Latency is added to every simulated step.
	Latency time.Duration `mapstructure:"latency" yaml:"latency"`
}

// Store is where runs, approvals, the chat outbox and the audit trail live.
type Store struct {
	// Driver is sqlite (embedded, one process) or postgres (several replicas).
	Driver string `mapstructure:"driver" yaml:"driver"`
	// Path is the SQLite file. Load fills an empty one with $STATE_DIRECTORY/ndrbot.db
	// (systemd's StateDirectory=), else $XDG_DATA_HOME/ndrbot/ndrbot.db, else
	// ~/.local/share/ndrbot/ndrbot.db — never the working directory.
	Path string `mapstructure:"path" yaml:"path" config:"path"`
	// DSN is the PostgreSQL connection string (it holds a password: env or file).
	DSN     Secret `mapstructure:"dsn" yaml:"dsn"`
	DSNFile string `mapstructure:"dsn_file" yaml:"dsn_file" config:"path"`
	// AuditKey, when set, seals audit events with HMAC-SHA256, so someone with
	// write access to the database cannot recompute the chain.
	AuditKey     Secret `mapstructure:"audit_key" yaml:"audit_key"`
	AuditKeyFile string `mapstructure:"audit_key_file" yaml:"audit_key_file" config:"path"`
	// Checkpoints anchor the trail outside the database (they need the audit key).
	Checkpoints Checkpoints `mapstructure:"checkpoints" yaml:"checkpoints"`
}

// Checkpoints are signed statements of the audit trail's head, written where
// the database's writer cannot rewrite them; `ndrbot audit verify --checkpoints`
// checks the trail against them (a deleted tail, a rewritten head).
type Checkpoints struct {
	// File is appended one line per checkpoint (make it append-only: chattr +a,
	// or ship it to a log host).
	File string `mapstructure:"file" yaml:"file" config:"path"`
	// Channel is a Slack channel id (C…) the bot posts each checkpoint to; the
	// channel's history is the copy an attacker of the database cannot reach.
	Channel string `mapstructure:"channel" yaml:"channel"`
	// Interval between periodic checkpoints while `ndrbot serve` runs (one is also
	// written after every relief and at shutdown).
	Interval time.Duration `mapstructure:"interval" yaml:"interval"`
}

// Slack connects `ndrbot serve` to a workspace.
type Slack struct {
	// Mode is socket (Socket Mode: no public ingress) or http (Events and
	// Interactivity request URLs, signature-verified).
	Mode              string `mapstructure:"mode" yaml:"mode"`
	BotToken          Secret `mapstructure:"bot_token" yaml:"bot_token" env:"SLACK_BOT_TOKEN"`
	BotTokenFile      string `mapstructure:"bot_token_file" yaml:"bot_token_file" config:"path"`
	AppToken          Secret `mapstructure:"app_token" yaml:"app_token" env:"SLACK_APP_TOKEN"`
	AppTokenFile      string `mapstructure:"app_token_file" yaml:"app_token_file" config:"path"`
	SigningSecret     Secret `mapstructure:"signing_secret" yaml:"signing_secret" env:"SLACK_SIGNING_SECRET"`
	SigningSecretFile string `mapstructure:"signing_secret_file" yaml:"signing_secret_file" config:"path"`
	// Listen is the HTTP mode address, e.g. :8080.
	Listen string `mapstructure:"listen" yaml:"listen"`
	// APIURL is Slack's Web API base (GovSlack, proxies, tests).
	APIURL string `mapstructure:"api_url" yaml:"api_url"`
	// TeamID is the only workspace (T…) or Enterprise Grid organisation (E…)
	// whose HTTP mode requests are accepted; others get 403. Empty: the bot
	// token's workspace, as auth.test reports it at start.
	TeamID string `mapstructure:"team_id" yaml:"team_id"`
	// AppID is the only app (A…, Basic Information → App Credentials) whose HTTP
	// mode requests are accepted; others get 403. Empty: not checked.
	AppID string `mapstructure:"app_id" yaml:"app_id"`
	// Channels allowed for /ndr: channel ids or name patterns such as inc-*.
	Channels []string `mapstructure:"channels" yaml:"channels"`
	// EscalationChannel receives every escalation summary, with a link to its thread.
	EscalationChannel string `mapstructure:"escalation_channel" yaml:"escalation_channel"`
}

// Access says who may do what: chat user ids or user-group ids.
type Access struct {
	Responders []string `mapstructure:"responders" yaml:"responders"`
	Approvers  []string `mapstructure:"approvers" yaml:"approvers"`
	Admins     []string `mapstructure:"admins" yaml:"admins"`
	// FourEyes forbids the requester of a run to approve its reliefs.
	FourEyes bool `mapstructure:"four_eyes" yaml:"four_eyes"`
	// CLIFourEyes is what `ndrbot diagnose` does with a relief whose approval is
	// four-eyes (four_eyes above, or the playbook's): allow (the default) lets
	// the person at the terminal — requester and approver by nature — approve it
	// alone; refuse keeps the four-eyes floor on the terminal too, so the
	// terminal's lone approval is refused (and audited) and another approver
	// must approve it in chat. The default is allow because refuse ends the
	// single-operator terminal flow (ndrbot diagnose … --approve RELIEF) for every
	// four-eyes relief, which the built-in playbooks' restarts are.
	CLIFourEyes string `mapstructure:"cli_four_eyes" yaml:"cli_four_eyes"`
}

// access.cli_four_eyes values.
const (
	CLIFourEyesAllow  = "allow"
	CLIFourEyesRefuse = "refuse"
)

// Watch is the NDR watch: a mailbox where non-delivery reports arrive (postmaster,
// journal or a shared mailbox), read through a graph target; NDRs are counted per
// status code over a sliding window, and a code crossing the threshold posts one
// alert per cooldown with a Run diagnosis button.
type Watch struct {
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// Mailbox is the user id or principal name of the mailbox.
	Mailbox string `mapstructure:"mailbox" yaml:"mailbox"`
	// Folder is a well-known folder name (inbox) or a folder id.
	Folder string `mapstructure:"folder" yaml:"folder"`
	// Target is the graph target whose app registration reads the mailbox
	// (application permission Mail.Read, best limited to this mailbox with an
	// application access policy).
	Target string `mapstructure:"target" yaml:"target"`
	// Mode is poll (a delta query every poll_interval: no inbound endpoint) or
	// notifications (Graph change notifications to notification_url trigger the
	// delta query at once; polling every poll_interval stays as the safety net).
	Mode         string        `mapstructure:"mode" yaml:"mode"`
	PollInterval time.Duration `mapstructure:"poll_interval" yaml:"poll_interval"`
	// Threshold NDRs of one status code within Window make a spike; after an
	// alert, Cooldown passes before that code alerts again.
	Window    time.Duration `mapstructure:"window" yaml:"window"`
	Threshold int           `mapstructure:"threshold" yaml:"threshold"`
	Cooldown  time.Duration `mapstructure:"cooldown" yaml:"cooldown"`
	// Channel receives the alerts; empty means slack.escalation_channel.
	Channel string `mapstructure:"channel" yaml:"channel"`
	// NotificationURL is the public HTTPS URL Graph posts change notifications to
	// (notifications mode); it must reach Listen, e.g. through a reverse proxy.
	NotificationURL string `mapstructure:"notification_url" yaml:"notification_url"`
	// Listen is the address the notification endpoint is served on (notifications mode).
	Listen string `mapstructure:"listen" yaml:"listen"`
	// ClientState is the shared secret Graph echoes in every notification
	// (notifications mode; at most 128 characters).
	ClientState     Secret `mapstructure:"client_state" yaml:"client_state"`
	ClientStateFile string `mapstructure:"client_state_file" yaml:"client_state_file" config:"path"`

	// Exchange Online (exo): the app registration keys above (tenant_id,
	// client_id, one credential, cloud, authority_url). AllowModuleEndpoint lets
	// cmdlets the Admin API does not cover go to the InvokeCommand endpoint of
	// the Exchange Online PowerShell V3 module, which Microsoft does not document
	// for direct use.
	AllowModuleEndpoint bool `mapstructure:"allow_module_endpoint" yaml:"allow_module_endpoint"`
}

// Watch modes.
const (
	WatchPoll          = "poll"
	WatchNotifications = "notifications"
)

// AlertChannel is where the watch's alerts go: watch.channel, else
// slack.escalation_channel.
func (c Config) AlertChannel() string {
	if c.Watch.Channel != "" {
		return c.Watch.Channel
	}
	return c.Slack.EscalationChannel
}

// Server is `ndrbot serve`'s operations endpoint: /healthz, /readyz and /metrics
// (Prometheus), in Socket Mode as in HTTP mode.
type Server struct {
	// Listen is its address (default :9464); empty turns it off.
	Listen string `mapstructure:"listen" yaml:"listen"`
}

// Log configures slog.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug|info|warn|error
	Format string `mapstructure:"format" yaml:"format"` // text|json
}

// defaults is the embedded bottom layer without the per-kind target defaults: those
// are applied after the file and the environment have had their say on each target's
// kind, so that turning `exchange` into a lab target does not drag WinRM settings along.
func defaults() Config {
	return Config{
		Targets: map[string]Target{
			// No endpoints: the servers are site-specific. RequireEndpoints tells the
			// operator what to set when a playbook first needs them.
			"exchange": {Kind: KindExchange, Endpoints: []string{}},
			// The JEA endpoint of deploy/jea, for the Windows service (state and
			// restart). Optional: without endpoints its steps are skipped with a note.
			"jea": {Kind: KindJEA, Endpoints: []string{}},
			"eop": {Kind: KindProbe, Endpoints: []string{"outlook.office365.com:25"}},
			// No endpoints: the bot's own vantage point for DNS, DNSBL and MX probes,
			// whose subjects come from the playbook's parameters.
			"net": {Kind: KindProbe, Endpoints: []string{}},
			// Microsoft Graph with no app registration yet: the built-in playbooks lint,
			// ndr-5.5.4 reports its service-health step as not configured, and
			// graph-503 refuses to start until RequireApp is satisfied.
			"graph": {Kind: KindGraph, Endpoints: []string{}},
			// Exchange Online, likewise without an app registration: the playbooks
			// that read the tenant lint, and their exo steps are skipped with what to
			// set (RequireApp) until tenant_id, client_id and a credential are given.
			// The InvokeCommand route stays off (allow_module_endpoint).
			"exo": {Kind: KindEXO, Endpoints: []string{}},
		},
		Store:  Store{Driver: "sqlite", Checkpoints: Checkpoints{Interval: 15 * time.Minute}},
		Server: Server{Listen: ":9464"},
		Slack:  Slack{Mode: "socket", APIURL: "https://slack.com/api/", Listen: ":8080", Channels: []string{}},
		Access: Access{FourEyes: true, CLIFourEyes: CLIFourEyesAllow, Responders: []string{}, Approvers: []string{}, Admins: []string{}},
		Lab:    Lab{TimeScale: 300},
		Watch: Watch{Folder: "inbox", Target: "graph", Mode: WatchPoll, PollInterval: 60 * time.Second,
			Window: 5 * time.Minute, Threshold: 20, Cooldown: 30 * time.Minute, Listen: ":8081"},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Default returns the embedded defaults, each target completed by its kind's
// defaults from kinds: enough for the bot to start with no file (lab runs and
// the EOP probe work; Exchange needs endpoints and credentials).
func Default(kinds Kinds) Config {
	c := defaults()
	for name, t := range c.Targets {
		c.Targets[name] = t.withKindDefaults(kinds)
	}
	return c
}

// Target returns the target called name, or an error wrapping ErrUnknownTarget that
// lists the configured ones.
func (c Config) Target(name string) (Target, error) {
	if t, ok := c.Targets[name]; ok {
		return t, nil
	}
	names := make([]string, 0, len(c.Targets))
	for n := range c.Targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return Target{}, fmt.Errorf("%w %q (configured: %s)", ErrUnknownTarget, name, strings.Join(names, ", "))
}

// TargetKinds maps each configured target name to its kind, the shape the playbook
// linter wants for checking a step's target.
func (c Config) TargetKinds() map[string]string {
	m := make(map[string]string, len(c.Targets))
	for n, t := range c.Targets {
		m[n] = t.Kind
	}
	return m
}

// Origin tells where the value of a leaf key (e.g. "targets.exchange.password") came
// from: "default", "FILE:LINE", "env NDRBOT_…", or "" when unknown (a Config built in
// code, or a key no layer set).
func (c Config) Origin(key string) string { return c.origins[key] }

// RequireEndpoints returns nil when t (configured as name) has endpoints, otherwise an
// error wrapping ErrNoEndpoints that says exactly which key or variable to set. Empty
// endpoints are valid configuration (the default exchange target has none) so the
// check belongs to whoever is about to use the target. A graph target never has
// endpoints (cloud or graph_url says where Graph is), so it always passes.
func (t Target) RequireEndpoints(name string) error {
	if len(t.Endpoints) > 0 || t.Kind == KindGraph || t.Kind == KindEXO {
		return nil
	}
	key := "targets." + name + ".endpoints"
	return fmt.Errorf("target %q: %w: set %s in the config file or %s=%q (comma-separated)",
		name, ErrNoEndpoints, key, EnvName(key), exampleEndpoints(t.Kind))
}

// ErrNotConfigured: a graph or exo target names no tenant, application or
// credential yet.
var ErrNotConfigured = errors.New("not configured")

// AppUnset reports a graph or exo target with none of tenant_id, client_id and a
// credential set: the default graph and exo targets before the operator registers
// an app. Validate accepts it; RequireApp speaks when a playbook uses it. A
// target with some but not all of them set is a configuration error. Other kinds
// sign in no app and are never unset.
func (t Target) AppUnset() bool {
	return (t.Kind == KindGraph || t.Kind == KindEXO) && t.TenantID == "" && t.ClientID == "" && t.ClientSecret == "" &&
		t.ClientSecretFile == "" && t.CertificateFile == "" && t.CertificatePassword == "" &&
		t.CertificatePasswordFile == "" && t.ClientState == "" && t.ClientStateFile == ""
}

// RequireApp returns nil unless t (configured as name) is a graph or exo target
// with no app registration yet (AppUnset); then an error wrapping
// ErrNotConfigured that says which keys and variables to set, and which README
// section lists the app registration.
func (t Target) RequireApp(name string) error {
	if !t.AppUnset() {
		return nil
	}
	prefix := "targets." + name
	section := "Microsoft Graph"
	if t.Kind == KindEXO {
		section = "Exchange Online"
	}
	return fmt.Errorf("%s target %q %w: set %s.tenant_id, %s.client_id and a credential (%s, %s.client_secret_file or %s.certificate_file); "+
		"the README's %q section lists the app registration and its permissions",
		t.Kind, name, ErrNotConfigured, prefix, prefix, EnvName(prefix+".client_secret"), prefix, prefix, section)
}

func exampleEndpoints(kind string) string {
	switch kind {
	case KindWinRM:
		return "https://ex01.contoso.com:5986/wsman,https://ex02.contoso.com:5986/wsman"
	case KindExchange:
		return "http://ex01.contoso.com/PowerShell,http://ex02.contoso.com/PowerShell"
	case KindJEA:
		return "https://ex01.contoso.com:5986/wsman,https://ex02.contoso.com:5986/wsman"
	case KindProbe:
		return "contoso-com.mail.protection.outlook.com:25"
	}
	return "host1,host2"
}

// ResolvePassword returns the password from the environment or from password_file.
// Call it where the password is used, not at load time, so a rotated file is picked up
// by the next connection.
func (t Target) ResolvePassword() (string, error) {
	return ResolveSecret(t.Password, t.PasswordFile)
}

// ResolveSecret returns value, or the contents of file when file is set (one trailing
// newline removed, as editors and `echo` add one). Both set is an error, as in Validate.
func ResolveSecret(value Secret, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", errors.New("secret set both directly and through a *_file: use one")
	case file == "":
		return value.Reveal(), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", file)
	}
	return s, nil
}

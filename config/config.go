// Package config defines ndrbot's configuration: defaults, the YAML file, NDRBOT_*
// environment overrides, secrets from env or *_file, and validation.
package config

import "time"

// Config is the whole effective configuration.
type Config struct {
	Targets   map[string]Target `mapstructure:"targets" yaml:"targets"`
	Playbooks Playbooks         `mapstructure:"playbooks" yaml:"playbooks"`
	Lab       Lab               `mapstructure:"lab" yaml:"lab"`
	Log       Log               `mapstructure:"log" yaml:"log"`
}

// Target is a named group of endpoints a playbook step runs against.
type Target struct {
	// Kind is winrm, probe, graph or lab.
	Kind      string   `mapstructure:"kind" yaml:"kind"`
	Endpoints []string `mapstructure:"endpoints" yaml:"endpoints"`

	// WinRM.
	Auth               string        `mapstructure:"auth" yaml:"auth"` // ntlm | basic
	Username           string        `mapstructure:"username" yaml:"username"`
	Password           Secret        `mapstructure:"password" yaml:"password"`
	PasswordFile       string        `mapstructure:"password_file" yaml:"password_file"`
	CAFile             string        `mapstructure:"ca_file" yaml:"ca_file"`
	InsecureSkipVerify bool          `mapstructure:"insecure_skip_verify" yaml:"insecure_skip_verify"`
	AllowUnencrypted   bool          `mapstructure:"allow_unencrypted" yaml:"allow_unencrypted"`
	MaxConcurrency     int           `mapstructure:"max_concurrency" yaml:"max_concurrency"`
	Preamble           string        `mapstructure:"preamble" yaml:"preamble"`
	OperationTimeout   time.Duration `mapstructure:"operation_timeout" yaml:"operation_timeout"`
	MaxOutputBytes     int           `mapstructure:"max_output_bytes" yaml:"max_output_bytes"`

	// Probe.
	Timeout  time.Duration `mapstructure:"timeout" yaml:"timeout"`
	HeloName string        `mapstructure:"helo_name" yaml:"helo_name"`
}

// Playbooks says where playbooks beyond the built-in ones come from.
type Playbooks struct {
	// Dir adds or overrides playbooks (by id) from *.yaml files.
	Dir string `mapstructure:"dir" yaml:"dir"`
}

// Lab configures the simulated organisation.
type Lab struct {
	// TimeScale divides playbook waits in lab runs so a relief and its
	// verification finish in seconds (5m / 300 = 1s).
	TimeScale float64 `mapstructure:"time_scale" yaml:"time_scale"`
	// Latency is added to every simulated step.
	Latency time.Duration `mapstructure:"latency" yaml:"latency"`
}

// Log configures slog.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`   // debug|info|warn|error
	Format string `mapstructure:"format" yaml:"format"` // text|json
}

// Secret is a string that never prints itself.
type Secret string

// String redacts the value so a Secret cannot leak through fmt or slog.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Reveal returns the real value; call it only where the secret is used.
func (s Secret) Reveal() string { return string(s) }

package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/registry"
)

// kinds are the target kinds this build registers: config's tests check the
// defaults, keys and validation every kind declares in its executor package,
// through the same list `bot` hands to Load and Validate.
func kinds() config.Kinds {
	ks, err := registry.Kinds().Config()
	if err != nil {
		panic(err)
	}
	return ks
}

// A kind config has never heard of gets its defaults, its keys and its checks
// from its spec alone: registered beside the real kinds, its targets load with
// its defaults, a key only it reads is "not used" elsewhere, and its endpoint
// and target checks report under the target's keys. Without it in the list its
// targets are of an unknown kind.
func TestNewKindThroughItsSpec(t *testing.T) {
	t.Parallel()
	relay := config.KindSpec{
		Name:     "relay",
		Defaults: config.Target{Timeout: 42 * time.Second, MaxConcurrency: 2},
		Keys:     []string{"timeout", "realm"},
		Endpoint: func(raw string) string {
			if !strings.HasSuffix(raw, ":25") {
				return fmt.Sprintf("%q is not on port 25", raw)
			}
			return ""
		},
		Validate: func(prefix string, t config.Target, report config.Report) {
			if t.Timeout > time.Minute {
				report(prefix+".timeout", "%s is longer than a minute", t.Timeout)
			}
		},
	}
	withRelay := append(kinds(), relay)
	file := filepath.Join(t.TempDir(), "ndrbot.yaml")
	if err := os.WriteFile(file, []byte(`targets:
  relay:
    kind: relay
    endpoints: [smtp.contoso.com:25, smtp.contoso.com:587]
    preamble: Import-Module X
  eop:
    realm: CONTOSO.COM
`), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, kinds config.Kinds, env ...string) config.Config {
		t.Helper()
		cfg, _, err := config.Load(config.LoadOptions{File: file, Env: env, Kinds: kinds})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	cfg := load(t, withRelay)
	if got := cfg.Targets["relay"]; got.Timeout != 42*time.Second || got.MaxConcurrency != 2 {
		t.Errorf("relay target = timeout %s, max_concurrency %d; want its kind's defaults 42s, 2", got.Timeout, got.MaxConcurrency)
	}
	if got := cfg.Targets["eop"].Timeout; got != 10*time.Second {
		t.Errorf("probe target timeout = %s; the probe kind's default is 10s", got)
	}

	tests := []struct {
		name  string
		kinds config.Kinds
		env   []string
		want  []string
	}{
		{"registered", withRelay, nil, []string{
			`targets.eop.realm: not used by kind probe (only by exchange, jea, relay)`,
			`targets.relay.endpoints[1]: "smtp.contoso.com:587" is not on port 25`,
			`targets.relay.preamble: not used by kind relay (only by winrm)`,
		}},
		{"its own check", withRelay, []string{"NDRBOT_TARGETS_RELAY_TIMEOUT=2m"}, []string{
			`targets.eop.realm: not used by kind probe (only by exchange, jea, relay)`,
			`targets.relay.endpoints[1]: "smtp.contoso.com:587" is not on port 25`,
			`targets.relay.preamble: not used by kind relay (only by winrm)`,
			`targets.relay.timeout: 2m0s is longer than a minute`,
		}},
		{"not registered", kinds(), nil, []string{
			`targets.eop.realm: not used by kind probe (only by exchange, jea)`,
			`targets.relay.kind: unknown kind "relay" (exchange|jea|winrm|probe|graph|exo|lab)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := load(t, tt.kinds, tt.env...).Validate(tt.kinds)
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Key+": "+p.Msg)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

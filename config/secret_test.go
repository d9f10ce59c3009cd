package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	. "github.com/ndrbot/ndrbot/config"
)

const leak = "hunter2-do-not-print"

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret(leak)
	// A wrong verb prints the value through fmt's fallback path; vet rejects a
	// constant "%d" here, which is the point of testing it.
	wrongVerb := "%d"
	target := Target{Kind: KindWinRM, Password: s}

	var logText, logJSON bytes.Buffer
	slog.New(slog.NewTextHandler(&logText, nil)).Info("x", "secret", s, "target", target)
	slog.New(slog.NewJSONHandler(&logJSON, nil)).Info("x", "secret", s, "target", target)
	js, err := json.Marshal(target)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.Marshal(target)
	if err != nil {
		t.Fatal(err)
	}
	text, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"%v":        fmt.Sprintf("%v", s),
		"%s":        fmt.Sprintf("%s", s),
		"%q":        fmt.Sprintf("%q", s),
		"%x":        fmt.Sprintf("%x", s),
		"%d":        fmt.Sprintf(wrongVerb, s),
		"%#v":       fmt.Sprintf("%#v", s),
		"%+v(tgt)":  fmt.Sprintf("%+v", target),
		"%#v(tgt)":  fmt.Sprintf("%#v", target),
		"slog text": logText.String(),
		"slog json": logJSON.String(),
		"json":      string(js),
		"yaml":      string(ys),
		"text":      string(text),
	}
	hexLeak := fmt.Sprintf("%x", leak)
	for name, out := range outputs {
		if strings.Contains(out, leak) || strings.Contains(out, hexLeak) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	if !strings.Contains(outputs["json"], `"[redacted]"`) || !strings.Contains(outputs["yaml"], "[redacted]") {
		t.Errorf("set secret not shown as [redacted]: %s / %s", outputs["json"], outputs["yaml"])
	}
	if s.Reveal() != leak {
		t.Error("Reveal lost the value")
	}
	if Secret("").String() != "" {
		t.Error("an unset secret should print empty, so it reads as unset")
	}
}

func TestPrintHidesEnvSecret(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/valid.yaml", "NDRBOT_TARGETS_SIM_PASSWORD="+leak)
	var out bytes.Buffer
	if err := cfg.Print(&out, kinds()); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.Contains(s, leak) {
		t.Fatalf("Print leaks a secret from env:\n%s", s)
	}
	for _, want := range []string{
		"password: '[redacted]' # env NDRBOT_TARGETS_SIM_PASSWORD",
		`password: ""`, // exchange: unset, password_file used instead
		"operation_timeout: 2m0s",
		"ex02.contoso.com",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Print output lacks %q:\n%s", want, s)
		}
	}
	// WinRM keys are left out of the probe and lab targets while empty.
	if n := strings.Count(s, "preamble:"); n != 1 {
		t.Errorf("preamble printed %d times, want once (exchange only):\n%s", n, s)
	}
	// Redacted leaves the original alone.
	if cfg.Redacted().Targets["sim"].Password.Reveal() != "[redacted]" || cfg.Targets["sim"].Password.Reveal() != leak {
		t.Error("Redacted changed the original or did not redact the copy")
	}
}

// What Print writes is a configuration Load reads back to the same values: the
// output is a usable starting point for a file.
func TestPrintRoundTrip(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/valid.yaml")
	var out bytes.Buffer
	if err := cfg.Print(&out, kinds()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	again := mustLoad(t, path)
	a, b := WithoutOrigins(cfg), WithoutOrigins(again)
	if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
		t.Errorf("round trip changed the configuration:\n%s\nbefore %#v\nafter  %#v", out.String(), a, b)
	}
}

func TestResolvePassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	crlf := filepath.Join(dir, "crlf")
	if err := os.WriteFile(crlf, []byte("pw\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		target  Target
		want    string
		wantErr string
	}{
		{"from env value", Target{Password: "from-env"}, "from-env", ""},
		{"from file, newline trimmed", Target{PasswordFile: "testdata/password.txt"}, "s3cret-from-file", ""},
		{"from file, CRLF trimmed", Target{PasswordFile: crlf}, "pw", ""},
		{"unset", Target{}, "", ""},
		{"both", Target{Password: "x", PasswordFile: "testdata/password.txt"}, "", "both"},
		{"missing file", Target{PasswordFile: filepath.Join(dir, "nope")}, "", "no such file"},
		{"empty file", Target{PasswordFile: "testdata/empty.txt"}, "", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.target.ResolvePassword()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

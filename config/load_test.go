package config_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/ndrbot/ndrbot/config"
)

// loadFile loads one fixture with the given environment, and no other place to look.
func loadFile(t *testing.T, file string, env ...string) (Config, Source, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return Load(LoadOptions{Kinds: kinds(), File: file, Env: env, WorkDir: wd})
}

func mustLoad(t *testing.T, file string, env ...string) Config {
	t.Helper()
	cfg, _, err := loadFile(t, file, env...)
	if err != nil {
		t.Fatalf("Load(%s): %v", file, err)
	}
	return cfg
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	d := Default(kinds())
	ex, eop := d.Targets["exchange"], d.Targets["eop"]
	want := map[string][2]any{
		"exchange.kind":              {ex.Kind, KindExchange},
		"exchange.endpoints":         {len(ex.Endpoints), 0},
		"exchange.auth":              {ex.Auth, "kerberos"},
		"exchange.configuration":     {ex.ConfigurationName, "Microsoft.Exchange"},
		"exchange.idle_timeout":      {ex.IdleTimeout, 5 * time.Minute},
		"jea.kind":                   {d.Targets["jea"].Kind, KindJEA},
		"jea.configuration":          {d.Targets["jea"].ConfigurationName, "ndrbot"},
		"jea.endpoints":              {len(d.Targets["jea"].Endpoints), 0},
		"exchange.max_concurrency":   {ex.MaxConcurrency, 4},
		"exchange.operation_timeout": {ex.OperationTimeout, 60 * time.Second},
		"exchange.max_output_bytes":  {ex.MaxOutputBytes, 1 << 20},
		"eop.kind":                   {eop.Kind, KindProbe},
		"eop.endpoints":              {strings.Join(eop.Endpoints, ","), "outlook.office365.com:25"},
		"eop.timeout":                {eop.Timeout, 10 * time.Second},
		"lab.time_scale":             {d.Lab.TimeScale, 300.0},
		"lab.latency":                {d.Lab.Latency, time.Duration(0)},
		"log.level":                  {d.Log.Level, "info"},
		"log.format":                 {d.Log.Format, "text"},
		"access.four_eyes":           {d.Access.FourEyes, true},
		"access.cli_four_eyes":       {d.Access.CLIFourEyes, "allow"},
	}
	for k, gw := range want {
		if gw[0] != gw[1] {
			t.Errorf("%s = %v, want %v", k, gw[0], gw[1])
		}
	}
	if err := d.Validate(kinds()); err != nil {
		t.Errorf("Default(kinds()).Validate(kinds()) = %v", err)
	}
	// Default hands out fresh maps: a caller editing one must not change the next.
	d.Targets["exchange"] = Target{}
	if Default(kinds()).Targets["exchange"].Kind != KindExchange {
		t.Error("Default shares state between calls")
	}
}

func TestLoadWithNothingIsDefault(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	cfg, src, err := Load(LoadOptions{Kinds: kinds(), WorkDir: t.TempDir(), HomeDir: home})
	if err != nil {
		t.Fatal(err)
	}
	if src.String() != "defaults" || src.File != "" {
		t.Errorf("source = %+v, want defaults", src)
	}
	// The one default that depends on the options: the store under the home directory.
	want := Default(kinds())
	want.Store.Path = filepath.Join(home, ".local", "share", "ndrbot", "ndrbot.db")
	if got := WithoutOrigins(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("Load with no file or env:\n got %+v\nwant %+v", got, want)
	}
	if o := cfg.Origin("targets.exchange.max_concurrency"); o != "default" {
		t.Errorf("origin = %q, want default", o)
	}
}

func TestFileResolution(t *testing.T) {
	t.Parallel()
	const marker = "log:\n  level: %s\n"
	type setup struct{ work, xdg, home bool }
	tests := []struct {
		name    string
		files   setup
		file    string // --config, relative to the work dir
		env     []string
		xdgRel  bool // XDG_CONFIG_HOME is relative: ignored per the spec
		want    string
		wantVia string
	}{
		{name: "--config wins over everything", files: setup{true, true, true}, file: "custom.yaml", want: "custom", wantVia: "--config"},
		{name: "--config beats NDRBOT_CONFIG", files: setup{true, true, true}, file: "custom.yaml", env: []string{"NDRBOT_CONFIG=other.yaml"}, want: "custom", wantVia: "--config"},
		{name: "NDRBOT_CONFIG names the file", files: setup{true, true, true}, env: []string{"NDRBOT_CONFIG=custom.yaml"}, want: "custom", wantVia: "NDRBOT_CONFIG"},
		{name: "./ndrbot.yaml before XDG", files: setup{true, true, true}, want: "work", wantVia: "working directory"},
		{name: "XDG_CONFIG_HOME", files: setup{false, true, true}, want: "xdg", wantVia: "XDG config directory"},
		{name: "~/.config when XDG_CONFIG_HOME is relative", files: setup{false, true, true}, xdgRel: true, want: "home", wantVia: "XDG config directory"},
		{name: "~/.config when XDG_CONFIG_HOME is unset", files: setup{false, false, true}, want: "home", wantVia: "XDG config directory"},
		{name: "defaults", want: "info", wantVia: "defaults"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			work, xdg, home := t.TempDir(), t.TempDir(), t.TempDir()
			writeFile(t, filepath.Join(work, "custom.yaml"), strings.Replace(marker, "%s", "custom", 1))
			if tt.files.work {
				writeFile(t, filepath.Join(work, "ndrbot.yaml"), strings.Replace(marker, "%s", "work", 1))
			}
			if tt.files.xdg {
				writeFile(t, filepath.Join(xdg, "ndrbot", "ndrbot.yaml"), strings.Replace(marker, "%s", "xdg", 1))
			}
			if tt.files.home {
				writeFile(t, filepath.Join(home, ".config", "ndrbot", "ndrbot.yaml"), strings.Replace(marker, "%s", "home", 1))
			}
			opts := LoadOptions{File: tt.file, Env: tt.env, WorkDir: work, HomeDir: home}
			if tt.files.xdg {
				opts.XDGConfigHome = xdg
			}
			if tt.xdgRel {
				opts.XDGConfigHome = "relative/xdg"
			}
			// The level is not an enum value here; only where it came from matters.
			cfg, src, err := Load(opts)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Log.Level != tt.want {
				t.Errorf("read %q, want the %q file", cfg.Log.Level, tt.want)
			}
			if src.Via != tt.wantVia {
				t.Errorf("Via = %q, want %q", src.Via, tt.wantVia)
			}
			if tt.want != "info" && !filepath.IsAbs(src.File) {
				t.Errorf("File = %q, want an absolute path", src.File)
			}
		})
	}
}

func TestFileResolutionErrors(t *testing.T) {
	t.Parallel()
	t.Run("missing --config", func(t *testing.T) {
		t.Parallel()
		work := t.TempDir()
		// A ./ndrbot.yaml must not be used in its place.
		writeFile(t, filepath.Join(work, "ndrbot.yaml"), "log: {level: debug}\n")
		_, _, err := Load(LoadOptions{Kinds: kinds(), File: "missing.yaml", WorkDir: work})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
		for _, want := range []string{filepath.Join(work, "missing.yaml"), "--config", "does not exist"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
	t.Run("missing NDRBOT_CONFIG", func(t *testing.T) {
		t.Parallel()
		_, _, err := Load(LoadOptions{Kinds: kinds(), Env: []string{"NDRBOT_CONFIG=/nonexistent/ndrbot.yaml"}})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "NDRBOT_CONFIG") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("--config is a directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, _, err := Load(LoadOptions{Kinds: kinds(), File: dir})
		if err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("./ndrbot.yaml unusable is not skipped", func(t *testing.T) {
		t.Parallel()
		work := t.TempDir()
		if err := os.Mkdir(filepath.Join(work, "ndrbot.yaml"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, _, err := Load(LoadOptions{Kinds: kinds(), WorkDir: work})
		if err == nil {
			t.Fatal("a directory named ndrbot.yaml was silently skipped")
		}
	})
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/precedence.yaml",
		"NDRBOT_LOG_LEVEL=warn",
		"NDRBOT_TARGETS_EXCHANGE_MAX_CONCURRENCY=8",
		"NDRBOT_LAB_LATENCY=", // empty counts as unset
	)
	ex := cfg.Targets["exchange"]
	tests := []struct {
		key        string
		got, want  any
		wantOrigin string
	}{
		{"log.level", cfg.Log.Level, "warn", "env NDRBOT_LOG_LEVEL"},                                              // env > file
		{"targets.exchange.max_concurrency", ex.MaxConcurrency, 8, "env NDRBOT_TARGETS_EXCHANGE_MAX_CONCURRENCY"}, // env > file
		{"log.format", cfg.Log.Format, "json", "testdata/precedence.yaml:4"},                                      // file > default
		{"lab.time_scale", cfg.Lab.TimeScale, 60.0, "testdata/precedence.yaml:6"},                                 // file > default
		{"targets.exchange.endpoints", strings.Join(ex.Endpoints, ","), "https://file01.contoso.com:5986/wsman", "testdata/precedence.yaml:9"},
		{"lab.latency", cfg.Lab.Latency, time.Duration(0), "default"},
		{"targets.exchange.operation_timeout", ex.OperationTimeout, 60 * time.Second, "default"}, // kind default survives a partial file
		{"targets.exchange.auth", ex.Auth, "kerberos", "default"},
		{"targets.eop.endpoints", strings.Join(cfg.Targets["eop"].Endpoints, ","), "outlook.office365.com:25", "default"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.key, tt.got, tt.want)
		}
		origin := cfg.Origin(tt.key)
		if strings.HasPrefix(tt.wantOrigin, "testdata/") {
			origin = strings.TrimPrefix(filepath.ToSlash(origin), filepath.ToSlash(mustWD(t))+"/")
		}
		if origin != tt.wantOrigin {
			t.Errorf("Origin(%s) = %q, want %q", tt.key, origin, tt.wantOrigin)
		}
	}
}

func mustWD(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// The failure viper is known for: env ignored for keys the file does not mention.
func TestEnvForKeysAbsentFromFile(t *testing.T) {
	t.Parallel()
	cfg, src, err := loadFile(t, "testdata/log-only.yaml",
		"NDRBOT_TARGETS_EXCHANGE_PASSWORD=s3cret",
		"NDRBOT_TARGETS_EXCHANGE_ENDPOINTS=https://ex01:5986/wsman, https://ex02:5986/wsman,",
		"NDRBOT_TARGETS_EXCHANGE_USERNAME=CONTOSO\\svc",
		"NDRBOT_TARGETS_EXCHANGE_OPERATION_TIMEOUT=2m",
		"NDRBOT_TARGETS_EXCHANGE_INSECURE_SKIP_VERIFY=true",
		"NDRBOT_TARGETS_EOP_HELO_NAME=ndrbot.contoso.com",
		"NDRBOT_LAB_TIME_SCALE=12.5",
		"NDRBOT_LAB_LATENCY=250ms",
		"NDRBOT_LOG_FORMAT=json",
		"NDRBOT_PLAYBOOKS_DIR=testdata/playbooks",
		"PATH=/usr/bin", // not ours: ignored
	)
	if err != nil {
		t.Fatal(err)
	}
	ex := cfg.Targets["exchange"]
	if got := ex.Password.Reveal(); got != "s3cret" {
		t.Errorf("password = %q", got)
	}
	if !slices.Equal(ex.Endpoints, []string{"https://ex01:5986/wsman", "https://ex02:5986/wsman"}) {
		t.Errorf("endpoints = %q", ex.Endpoints)
	}
	if ex.Username != `CONTOSO\svc` || ex.OperationTimeout != 2*time.Minute || !ex.InsecureSkipVerify {
		t.Errorf("exchange = %+v", ex)
	}
	if cfg.Targets["eop"].HeloName != "ndrbot.contoso.com" {
		t.Errorf("eop.helo_name = %q", cfg.Targets["eop"].HeloName)
	}
	if cfg.Lab.TimeScale != 12.5 || cfg.Lab.Latency != 250*time.Millisecond {
		t.Errorf("lab = %+v", cfg.Lab)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "json" {
		t.Errorf("log = %+v", cfg.Log)
	}
	// A relative path from the environment resolves against the working directory.
	if want := filepath.Join(mustWD(t), "testdata", "playbooks"); cfg.Playbooks.Dir != want {
		t.Errorf("playbooks.dir = %q, want %q", cfg.Playbooks.Dir, want)
	}
	if !slices.Contains(src.Env, "NDRBOT_TARGETS_EXCHANGE_PASSWORD") || slices.Contains(src.Env, "PATH") {
		t.Errorf("Source.Env = %q", src.Env)
	}
	if err := cfg.Validate(kinds()); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestEnvTargetNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    string
		target string
		check  func(Target) bool
	}{
		{"dash becomes underscore", "NDRBOT_TARGETS_EXCHANGE_WEST_MAX_CONCURRENCY=3", "exchange-west",
			func(t Target) bool { return t.MaxConcurrency == 3 }},
		{"underscore name", "NDRBOT_TARGETS_LAB_SIM_ENDPOINTS=ex01.lab", "lab_sim",
			func(t Target) bool { return slices.Equal(t.Endpoints, []string{"ex01.lab"}) }},
		{"key that is a suffix of another key", "NDRBOT_TARGETS_EX_MAX_OUTPUT_BYTES=2048", "ex",
			func(t Target) bool { return t.MaxOutputBytes == 2048 }},
		{"password vs password_file", "NDRBOT_TARGETS_EXCHANGE_WEST_PASSWORD_FILE=testdata/password.txt", "exchange-west",
			func(t Target) bool { return strings.HasSuffix(t.PasswordFile, "password.txt") && t.Password == "" }},
		{"env alone defines a target", "NDRBOT_TARGETS_NEW_SITE_KIND=lab", "new_site",
			func(t Target) bool { return t.Kind == KindLab }},
		{"env-defined winrm target gets winrm defaults", "NDRBOT_TARGETS_DR_KIND=winrm", "dr",
			func(t Target) bool { return t.MaxConcurrency == 4 && t.Auth == "ntlm" }},
		{"env kind change drops the old kind's defaults", "NDRBOT_TARGETS_EXCHANGE_KIND=lab", "exchange",
			func(t Target) bool { return t.Kind == KindLab && t.MaxConcurrency == 0 && t.Auth == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, "testdata/named-targets.yaml", tt.env)
			target, ok := cfg.Targets[tt.target]
			if !ok {
				t.Fatalf("no target %q; have %v", tt.target, slices.Sorted(maps.Keys(cfg.Targets)))
			}
			if !tt.check(target) {
				t.Errorf("%s: target %q = %+v", tt.env, tt.target, target)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		env  string
		want []string
	}{
		{"not a number", "", "NDRBOT_LAB_TIME_SCALE=fast",
			[]string{"NDRBOT_LAB_TIME_SCALE: lab.time_scale:", `"fast" is not a number`}},
		{"unitless duration", "", "NDRBOT_TARGETS_EXCHANGE_OPERATION_TIMEOUT=60",
			[]string{"NDRBOT_TARGETS_EXCHANGE_OPERATION_TIMEOUT: targets.exchange.operation_timeout:", "no unit"}},
		{"not a bool", "", "NDRBOT_TARGETS_EXCHANGE_ALLOW_UNENCRYPTED=yes please",
			[]string{"targets.exchange.allow_unencrypted", "not true or false"}},
		{"not an int", "", "NDRBOT_TARGETS_EXCHANGE_MAX_CONCURRENCY=4.5",
			[]string{"targets.exchange.max_concurrency", "not an integer"}},
		{"two defined targets fit", "testdata/named-targets.yaml", "NDRBOT_TARGETS_EX_OPERATION_TIMEOUT=90s",
			[]string{"ambiguous", "targets.ex.operation_timeout", "targets.ex_operation.timeout"}},
		{"names colliding in env", "testdata/invalid/target-name-collision.yaml", "NDRBOT_TARGETS_EX_01_KIND=lab",
			[]string{"NDRBOT_TARGETS_EX_01_KIND: ambiguous", "ex-01", "ex_01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Load(LoadOptions{Kinds: kinds(), File: tt.file, Env: []string{tt.env}, WorkDir: mustWD(t)})
			if err == nil {
				t.Fatalf("%s: no error", tt.env)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("all reported at once", func(t *testing.T) {
		t.Parallel()
		_, _, err := Load(LoadOptions{Kinds: kinds(), Env: []string{"NDRBOT_LAB_LATENCY=soon", "NDRBOT_LAB_TIME_SCALE=fast"}})
		if err == nil || !strings.Contains(err.Error(), "NDRBOT_LAB_LATENCY") || !strings.Contains(err.Error(), "NDRBOT_LAB_TIME_SCALE") {
			t.Errorf("err = %v, want both variables named", err)
		}
	})
}

// An NDRBOT_* variable that is no setting is ignored with a warning: Kubernetes
// injects NDRBOT_PORT, NDRBOT_SERVICE_HOST, … for a Service named ndrbot
// (https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables),
// and the bot must start anyway; a misspelling is named with its likely setting.
func TestUnknownEnvIsAWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		want []string // one warning per entry, in order
	}{
		{"Kubernetes service links",
			[]string{"NDRBOT_PORT=tcp://10.0.0.1:8080", "NDRBOT_SERVICE_HOST=10.0.0.1", "NDRBOT_SERVICE_PORT=8080",
				"NDRBOT_PORT_8080_TCP=tcp://10.0.0.1:8080", "NDRBOT_PORT_8080_TCP_PROTO=tcp"},
			[]string{"NDRBOT_PORT: not a setting, ignored", "NDRBOT_PORT_8080_TCP: not a setting, ignored",
				"NDRBOT_PORT_8080_TCP_PROTO: not a setting, ignored", "NDRBOT_SERVICE_HOST: not a setting, ignored",
				"NDRBOT_SERVICE_PORT: not a setting, ignored"}},
		{"misspelt variable", []string{"NDRBOT_LOG_LEVL=debug"},
			[]string{`NDRBOT_LOG_LEVL: not a setting, ignored (did you mean "NDRBOT_LOG_LEVEL"?)`}},
		{"misspelt target key", []string{"NDRBOT_TARGETS_EXCHANGE_PASWORD=x"},
			[]string{`NDRBOT_TARGETS_EXCHANGE_PASWORD: not a setting, ignored (did you mean "NDRBOT_TARGETS_EXCHANGE_PASSWORD"?)`}},
		{"section without key", []string{"NDRBOT_LOG=debug"}, []string{"NDRBOT_LOG: not a setting, ignored"}},
		{"settings warn of nothing", []string{"NDRBOT_LOG_LEVEL=debug", "NDRBOT_CONFIG="}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Alongside a real setting, which still applies.
			cfg, src, err := Load(LoadOptions{Kinds: kinds(), Env: append([]string{"NDRBOT_LAB_TIME_SCALE=60"}, tt.env...)})
			if err != nil {
				t.Fatalf("Load refused %v: %v", tt.env, err)
			}
			if cfg.Lab.TimeScale != 60 {
				t.Errorf("lab.time_scale = %v, want 60 from the environment", cfg.Lab.TimeScale)
			}
			if len(src.Warnings) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", src.Warnings, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(src.Warnings[i], w) {
					t.Errorf("warning %d = %q, want %q", i, src.Warnings[i], w)
				}
			}
			if slices.Contains(src.Env, "NDRBOT_PORT") {
				t.Errorf("an ignored variable is listed as applied: %v", src.Env)
			}
		})
	}
}

// store.path, when unset, is resolved by Load from systemd's state directory or
// the XDG data directory, and never to the working directory.
func TestDefaultStorePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      LoadOptions
		env       []string
		want, via string
	}{
		{"systemd StateDirectory= first", LoadOptions{StateDirectory: "/var/lib/ndrbot", XDGDataHome: "/data", HomeDir: "/home/ops"}, nil,
			"/var/lib/ndrbot/ndrbot.db", "default from $STATE_DIRECTORY"},
		{"several state directories: the first", LoadOptions{StateDirectory: "/var/lib/ndrbot:/var/lib/other"}, nil,
			"/var/lib/ndrbot/ndrbot.db", "default from $STATE_DIRECTORY"},
		{"XDG_DATA_HOME", LoadOptions{XDGDataHome: "/data", HomeDir: "/home/ops"}, nil,
			"/data/ndrbot/ndrbot.db", "default from $XDG_DATA_HOME"},
		{"relative XDG_DATA_HOME is ignored (XDG spec)", LoadOptions{XDGDataHome: "data", HomeDir: "/home/ops"}, nil,
			"/home/ops/.local/share/ndrbot/ndrbot.db", "default from ~/.local/share"},
		{"relative STATE_DIRECTORY is ignored", LoadOptions{StateDirectory: "state", HomeDir: "/home/ops"}, nil,
			"/home/ops/.local/share/ndrbot/ndrbot.db", "default from ~/.local/share"},
		{"home only", LoadOptions{HomeDir: "/home/ops"}, nil,
			"/home/ops/.local/share/ndrbot/ndrbot.db", "default from ~/.local/share"},
		{"nowhere known: empty, not ./ndrbot.db", LoadOptions{WorkDir: "/work"}, nil, "", "default"},
		{"store.path wins", LoadOptions{StateDirectory: "/var/lib/ndrbot", WorkDir: "/work"}, []string{"NDRBOT_STORE_PATH=/srv/bot.db"},
			"/srv/bot.db", "env NDRBOT_STORE_PATH"},
		{"postgres has no file", LoadOptions{XDGDataHome: "/data"}, []string{"NDRBOT_STORE_DRIVER=postgres", "NDRBOT_STORE_DSN=postgres://db/ndr"},
			"", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Env = tt.env
			cfg, _, err := Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store.Path != filepath.FromSlash(tt.want) || cfg.Origin("store.path") != tt.via {
				t.Errorf("store.path = %q from %q, want %q from %q", cfg.Store.Path, cfg.Origin("store.path"), tt.want, tt.via)
			}
		})
	}
	// config check prints the resolved file and why.
	cfg, _, err := Load(LoadOptions{Kinds: kinds(), XDGDataHome: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := cfg.Print(&out, kinds()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "path: /data/ndrbot/ndrbot.db # default from $XDG_DATA_HOME") {
		t.Errorf("Print does not show the resolved store path:\n%s", out.String())
	}
}

// EnvLoadOptions takes every directory from the environment it is given, not
// from the process's.
func TestEnvLoadOptions(t *testing.T) {
	t.Parallel()
	env := []string{"HOME=/home/ops", "USERPROFILE=C:\\Users\\ops", "XDG_CONFIG_HOME=/cfg", "XDG_DATA_HOME=/data",
		"STATE_DIRECTORY=/var/lib/ndrbot", "NDRBOT_LOG_LEVEL=debug"}
	got := EnvLoadOptions("bot.yaml", env, "/work")
	home := "/home/ops"
	if runtime.GOOS == "windows" {
		home = "C:\\Users\\ops"
	}
	want := LoadOptions{File: "bot.yaml", Env: env, WorkDir: "/work", XDGConfigHome: "/cfg", HomeDir: home,
		StateDirectory: "/var/lib/ndrbot", XDGDataHome: "/data"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EnvLoadOptions = %+v, want %+v", got, want)
	}
	if got := EnvLoadOptions("", nil, ""); !reflect.DeepEqual(got, LoadOptions{}) {
		t.Errorf("with an empty environment: %+v, want nothing to look at", got)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture string
		want    []string // the first is "KEY: …" or a fragment naming the place
	}{
		{"misspelt-key", []string{":4: targets.exchange.pasword_file: unknown key", `did you mean "password_file"`}},
		{"misspelt-section", []string{":1: logs: unknown key", `did you mean "log"`}},
		{"bad-int", []string{":3: targets.exchange.max_concurrency:", `"four" is not an integer`}},
		{"unitless-duration", []string{":4: targets.exchange.operation_timeout:", `"60" has no unit (write e.g. "60s")`}},
		{"bad-bool", []string{"targets.exchange.insecure_skip_verify:", "not true or false"}},
		{"bad-duration", []string{"lab.latency:", `"soon" is not a duration`}},
		{"uppercase-target", []string{":3: targets.Exchange-West:", "not a valid name"}},
		{"duplicate-key", []string{":3: log.level: duplicate key (first at line 2)"}},
		{"syntax", []string{"yaml:"}},
		{"not-mapping", []string{":1: the top level must be a mapping", "targets, playbooks, lab, store, slack, access, log"}},
		{"section-not-mapping", []string{":1: log: expected a mapping"}},
		{"list-of-mappings", []string{"targets.exchange.endpoints:", "must be a single value"}},
		{"mapping-for-value", []string{"log.level: expected a single value, got a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "load", tt.fixture+".yaml")
			_, _, err := loadFile(t, path)
			if err == nil {
				t.Fatal("no error")
			}
			// Every file error names the file.
			want := append([]string{filepath.Join(mustWD(t), path)}, tt.want...)
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadEmptyAndNullValues(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"testdata/empty.yaml", "testdata/nulls.yaml"} {
		cfg, src, err := loadFile(t, f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if src.File == "" {
			t.Errorf("%s: source = defaults, want the file", f)
		}
		if got := WithoutOrigins(cfg); !reflect.DeepEqual(got, Default(kinds())) {
			t.Errorf("%s: empty values should leave the defaults:\n got %+v\nwant %+v", f, got, Default(kinds()))
		}
	}
}

func TestValidFixture(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "testdata/valid.yaml")
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	ex := cfg.Targets["exchange"]
	// Relative paths in a file resolve against the file's directory.
	if want := filepath.Join(mustWD(t), "testdata", "ca.pem"); ex.CAFile != want {
		t.Errorf("ca_file = %q, want %q", ex.CAFile, want)
	}
	pw, err := ex.ResolvePassword()
	if err != nil || pw != "s3cret-from-file" {
		t.Errorf("ResolvePassword = %q, %v", pw, err)
	}
	if ex.MaxConcurrency != 6 || ex.OperationTimeout != 2*time.Minute || ex.MaxOutputBytes != 1<<20 {
		t.Errorf("exchange = %+v", ex)
	}
	if got := cfg.TargetKinds(); !reflect.DeepEqual(got, map[string]string{"exchange": KindWinRM, "jea": KindJEA, "eop": KindProbe, "net": KindProbe, "graph": KindGraph, "exo": KindEXO, "sim": KindLab}) {
		t.Errorf("TargetKinds = %v", got)
	}
}

func TestExampleConfig(t *testing.T) {
	t.Parallel()
	wd := mustWD(t)
	// The example names the operator's own CA and playbook directory; point them at
	// fixtures, and give the password the way the example says to.
	cfg, src, err := Load(LoadOptions{Kinds: kinds(),
		File:    filepath.Join("..", "ndrbot.example.yaml"),
		WorkDir: wd,
		Env: []string{
			"NDRBOT_TARGETS_EXCHANGE_PASSWORD=example-password",
			"NDRBOT_TARGETS_EXCHANGE_KRB5_CONF=testdata/krb5.conf",
			"NDRBOT_TARGETS_JEA_PASSWORD=example-password",
			"NDRBOT_TARGETS_JEA_KRB5_CONF=testdata/krb5.conf",
			"NDRBOT_TARGETS_JEA_CA_FILE=testdata/ca.pem",
			"NDRBOT_PLAYBOOKS_DIR=testdata/playbooks",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(kinds()); err != nil {
		t.Fatalf("ndrbot.example.yaml does not validate:\n%v", err)
	}
	if src.Via != "--config" {
		t.Errorf("source = %+v", src)
	}
	ex := cfg.Targets["exchange"]
	if ex.Kind != KindExchange || len(ex.Endpoints) != 2 || ex.Auth != "kerberos" || ex.MaxConcurrency != 4 || ex.Username == "" ||
		ex.ConfigurationName != "Microsoft.Exchange" || ex.Preamble != "" {
		t.Errorf("exchange = %+v", ex)
	}
	for _, ep := range ex.Endpoints {
		if !strings.HasSuffix(ep, "/PowerShell") {
			t.Errorf("endpoint %q is not Exchange's /PowerShell", ep)
		}
	}
	jea := cfg.Targets["jea"]
	if jea.Kind != KindJEA || jea.ConfigurationName != "ndrbot" || len(jea.Endpoints) != 2 {
		t.Errorf("jea = %+v", jea)
	}
	for _, ep := range jea.Endpoints {
		if !strings.HasPrefix(ep, "https://") || !strings.Contains(ep, ":5986/") {
			t.Errorf("endpoint %q is not HTTPS on 5986", ep)
		}
	}
	if eop := cfg.Targets["eop"]; eop.Kind != KindProbe || !strings.HasSuffix(eop.Endpoints[0], ".mail.protection.outlook.com:25") {
		t.Errorf("eop = %+v", eop)
	}
	// Without the password the example must fail, naming the variable to set.
	cfg, _, err = Load(LoadOptions{Kinds: kinds(),
		File: filepath.Join("..", "ndrbot.example.yaml"), WorkDir: wd,
		Env: []string{"NDRBOT_TARGETS_EXCHANGE_KRB5_CONF=testdata/krb5.conf", "NDRBOT_TARGETS_JEA_PASSWORD=example-password",
			"NDRBOT_TARGETS_JEA_KRB5_CONF=testdata/krb5.conf", "NDRBOT_TARGETS_JEA_CA_FILE=testdata/ca.pem", "NDRBOT_PLAYBOOKS_DIR=testdata/playbooks"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(kinds()); err == nil || !strings.Contains(err.Error(), "NDRBOT_TARGETS_EXCHANGE_PASSWORD") {
		t.Errorf("Validate without password = %v", err)
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"log.level":                         "NDRBOT_LOG_LEVEL",
		"lab.time_scale":                    "NDRBOT_LAB_TIME_SCALE",
		"targets.exchange.password":         "NDRBOT_TARGETS_EXCHANGE_PASSWORD",
		"targets.exchange-west.ca_file":     "NDRBOT_TARGETS_EXCHANGE_WEST_CA_FILE",
		"targets.exchange.endpoints[1]":     "NDRBOT_TARGETS_EXCHANGE_ENDPOINTS",
		"targets.lab_sim.operation_timeout": "NDRBOT_TARGETS_LAB_SIM_OPERATION_TIMEOUT",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

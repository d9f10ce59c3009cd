package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ndrbot/ndrbot/config"
)

const unitFile = "systemd/ndrbot.service"

// directive is one Key=Value line of a unit file. Commented is set for a line of the
// form "#Key=Value" (no space after #): an alternative the file offers, which must be
// as valid as the active lines.
type directive struct {
	section, key, value string
	line                int
	commented           bool
}

var (
	sectionRE   = regexp.MustCompile(`^\[([A-Za-z]+)\]$`)
	directiveRE = regexp.MustCompile(`^(#?)([A-Z][A-Za-z0-9]*)=(.*)$`)
)

// parseUnit reads a systemd unit as systemd.syntax(7) describes it: sections, Key=Value
// lines, # and ; comments, a trailing backslash continuing a line.
func parseUnit(t *testing.T, text string) []directive {
	t.Helper()
	var out []directive
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		start := n
		for strings.HasSuffix(line, `\`) && !strings.HasPrefix(line, "#") && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		switch {
		case line == "":
		case sectionRE.MatchString(line):
			section = sectionRE.FindStringSubmatch(line)[1]
		case directiveRE.MatchString(line):
			m := directiveRE.FindStringSubmatch(line)
			if section == "" {
				t.Errorf("line %d: %s outside a section", start, m[2])
			}
			out = append(out, directive{section: section, key: m[2], value: strings.TrimSpace(m[3]), line: start, commented: m[1] == "#"})
		case strings.HasPrefix(line, "#"), strings.HasPrefix(line, ";"):
		default:
			t.Errorf("line %d: not a section, directive or comment: %q", start, line)
		}
	}
	return out
}

func readUnit(t *testing.T) (string, []directive) {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), parseUnit(t, string(b))
}

// values returns the active values of section's key in order; an empty assignment
// resets the list, as systemd does for list settings.
func values(ds []directive, section, key string) []string {
	var out []string
	for _, d := range ds {
		if d.section == section && d.key == key && !d.commented {
			if d.value == "" {
				out = nil
				continue
			}
			out = append(out, d.value)
		}
	}
	return out
}

func TestSystemdUnitHardening(t *testing.T) {
	_, ds := readUnit(t)
	want := map[string]string{
		"Type":                     "exec",
		"User":                     "ndrbot",
		"Group":                    "ndrbot",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "2", // the bot's exit status for a configuration error
		"StateDirectory":           "ndrbot",
		"StateDirectoryMode":       "0700",
		"LogsDirectory":            "ndrbot",
		"ConfigurationDirectory":   "ndrbot",
		"UMask":                    "0077",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"PrivateDevices":           "yes",
		"ProtectKernelTunables":    "yes",
		"ProtectKernelModules":     "yes",
		"ProtectKernelLogs":        "yes",
		"ProtectControlGroups":     "yes",
		"ProtectClock":             "yes",
		"ProtectHostname":          "yes",
		"ProtectProc":              "invisible",
		"RestrictNamespaces":       "yes",
		"RestrictRealtime":         "yes",
		"RestrictSUIDSGID":         "yes",
		"LockPersonality":          "yes",
		"MemoryDenyWriteExecute":   "yes",
		"SystemCallArchitectures":  "native",
		"RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
	}
	for key, v := range want {
		got := values(ds, "Service", key)
		if len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %v, want %s", key, got, v)
		}
	}
	// Empty: no capabilities at all.
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		found := false
		for _, d := range ds {
			if d.key == key && !d.commented {
				found = true
			}
		}
		if !found || len(values(ds, "Service", key)) != 0 {
			t.Errorf("%s should be set, and empty", key)
		}
	}
	if f := values(ds, "Service", "SystemCallFilter"); len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter %v, want @system-service first", f)
	}
	// ProtectSystem=strict leaves only the State and Logs directories writable.
	for _, key := range []string{"ReadWritePaths", "DynamicUser", "PermissionsStartOnly", "AmbientCapabilities"} {
		for _, v := range values(ds, "Service", key) {
			t.Errorf("%s=%s", key, v)
		}
	}
	exec := values(ds, "Service", "ExecStart")
	if len(exec) != 1 {
		t.Fatalf("ExecStart %v", exec)
	}
	if f := strings.Fields(exec[0]); len(f) < 2 || filepath.Base(f[0]) != "ndrbot" || f[1] != "serve" {
		t.Errorf("ExecStart=%s, want …/ndrbot serve", exec[0])
	}
	if w := values(ds, "Install", "WantedBy"); !slices.Equal(w, []string{"multi-user.target"}) {
		t.Errorf("WantedBy %v", w)
	}
}

// unitEnv is one Environment= assignment.
type unitEnv struct {
	name, value string
	commented   bool
	line        int
}

func environment(t *testing.T, ds []directive) []unitEnv {
	t.Helper()
	var out []unitEnv
	for _, d := range ds {
		if d.key != "Environment" {
			continue
		}
		name, value, ok := strings.Cut(d.value, "=")
		if !ok || strings.ContainsAny(d.value, " \"'") {
			t.Errorf("line %d: Environment=%s: write one NAME=value without spaces or quotes per line", d.line, d.value)
			continue
		}
		out = append(out, unitEnv{name, value, d.commented, d.line})
	}
	return out
}

var credRef = regexp.MustCompile(`^%d/([A-Za-z0-9_.-]+)$`)

// Every NDRBOT_* variable of the unit, active or offered in a comment, is a setting of
// the bot; secrets are only ever *_FILE variables pointing into the credentials
// directory, and each such file is a credential the unit loads.
func TestSystemdUnitSettings(t *testing.T) {
	_, ds := readUnit(t)
	envs := environment(t, ds)

	creds := map[string]directive{} // credential id → LoadCredential=
	for _, d := range ds {
		if d.key != "LoadCredential" {
			continue
		}
		id, src, ok := strings.Cut(d.value, ":")
		if !ok || !strings.HasPrefix(src, "/etc/ndrbot/credentials/") {
			t.Errorf("line %d: LoadCredential=%s: want ID:/etc/ndrbot/credentials/FILE", d.line, d.value)
		}
		creds[id] = d
	}
	used := map[string]bool{}
	for _, e := range envs {
		if !strings.HasPrefix(e.name, "NDRBOT_") {
			t.Errorf("line %d: %s is not an NDRBOT_* setting", e.line, e.name)
			continue
		}
		if isSecretVariable(e.name) {
			t.Errorf("line %d: %s puts a secret in the unit; load it as a credential and set its *_FILE", e.line, e.name)
		}
		if !strings.HasSuffix(e.name, "_FILE") || e.name == "NDRBOT_STORE_CHECKPOINTS_FILE" {
			continue
		}
		m := credRef.FindStringSubmatch(e.value)
		if m == nil {
			t.Errorf("line %d: %s=%s: a secret file should be %%d/<credential>", e.line, e.name, e.value)
			continue
		}
		cred, ok := creds[m[1]]
		switch {
		case !ok:
			t.Errorf("line %d: %s reads credential %s, which no LoadCredential= loads", e.line, e.name, m[1])
		case cred.commented && !e.commented:
			t.Errorf("line %d: %s reads credential %s, whose LoadCredential= is commented out", e.line, e.name, m[1])
		}
		if !e.commented {
			used[m[1]] = true
		}
	}
	for id, d := range creds {
		if !d.commented && !used[id] {
			t.Errorf("line %d: credential %s is loaded but no active *_FILE setting reads it", d.line, id)
		}
	}

	// The active environment, as systemd would give it: specifiers expanded, the
	// credentials, state and logs directories made. The bot must accept it and
	// ndrbot config check must pass (with an empty ndrbot.yaml).
	root := t.TempDir()
	dirs := map[string]string{
		"%d": filepath.Join(root, "run/credentials/ndrbot.service"),
		"%S": filepath.Join(root, "var/lib"),
		"%L": filepath.Join(root, "var/log"),
		"%E": filepath.Join(root, "etc"),
	}
	for _, sub := range []string{"%S/ndrbot", "%L/ndrbot"} {
		if err := os.MkdirAll(expand(sub, dirs), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	credValue := func(id string) string { return "credential " + id }
	for id, d := range creds {
		if !d.commented {
			writeFile(t, filepath.Join(dirs["%d"], id), credValue(id))
		}
	}
	var active, all []string
	for _, e := range envs {
		value := expand(e.value, dirs)
		if e.name == configEnv {
			if e.value != "/etc/ndrbot/ndrbot.yaml" {
				t.Errorf("%s=%s, want /etc/ndrbot/ndrbot.yaml (ConfigurationDirectory=ndrbot)", configEnv, e.value)
			}
			value = filepath.Join(dirs["%E"], "ndrbot/ndrbot.yaml")
			writeFile(t, value, "# empty: defaults and the unit's variables\n")
		}
		all = append(all, e.name+"="+value)
		if !e.commented {
			active = append(active, e.name+"="+value)
		}
	}
	// Offered alternatives conflict with each other (a keytab or a password), so
	// together they are only loaded, not validated.
	checkEnvSettings(t, "the unit's variables, commented ones included", all)
	cfg := checkEnvSettings(t, "the unit's active variables", active)
	if err := cfg.Validate(configKinds(t)); err != nil {
		t.Fatalf("ndrbot config check would fail under the unit:\n%v", err)
	}
	if cfg.Store.Driver != "sqlite" || filepath.Dir(cfg.Store.Path) != expand("%S/ndrbot", dirs) {
		t.Errorf("store %s at %s, want sqlite in the StateDirectory", cfg.Store.Driver, cfg.Store.Path)
	}
	// The unit names the file explicitly; without that line the bot's default under
	// StateDirectory=ndrbot ($STATE_DIRECTORY, which systemd sets) is the same file.
	var implicit []string
	for _, kv := range active {
		if !strings.HasPrefix(kv, "NDRBOT_STORE_PATH=") {
			implicit = append(implicit, kv)
		}
	}
	implicit = append(implicit, "STATE_DIRECTORY="+expand("%S/ndrbot", dirs), "HOME="+filepath.Join(root, "home"))
	opts := config.EnvLoadOptions("", implicit, "")
	opts.Kinds = configKinds(t)
	byDefault, _, err := config.Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if byDefault.Store.Path != cfg.Store.Path {
		t.Errorf("under $STATE_DIRECTORY the default store is %s, the unit names %s", byDefault.Store.Path, cfg.Store.Path)
	}
	if filepath.Dir(cfg.Store.Checkpoints.File) != expand("%L/ndrbot", dirs) {
		t.Errorf("checkpoints file %s, want it in the LogsDirectory", cfg.Store.Checkpoints.File)
	}
	for key, ref := range map[string]config.SecretRef{
		"slack.bot_token": {Value: cfg.Slack.BotToken, File: cfg.Slack.BotTokenFile},
		"slack.app_token": {Value: cfg.Slack.AppToken, File: cfg.Slack.AppTokenFile},
		"store.audit_key": {Value: cfg.Store.AuditKey, File: cfg.Store.AuditKeyFile},
	} {
		got, err := config.ResolveSecret(ref.Value, ref.File)
		if err != nil || !strings.HasPrefix(got, "credential ") {
			t.Errorf("%s resolves to %q (%v), want a credential", key, got, err)
		}
	}
}

func expand(s string, dirs map[string]string) string {
	for spec, dir := range dirs {
		s = strings.ReplaceAll(s, spec, dir)
	}
	return s
}

// isSecretVariable says whether name sets a secret itself (NDRBOT_SLACK_BOT_TOKEN)
// rather than the file holding it, by asking config which keys are secrets.
func isSecretVariable(name string) bool {
	for _, r := range config.Default(nil).Secrets() {
		if !r.KeyFile && config.EnvName(r.Key) == name {
			return true
		}
	}
	return false
}

func TestSysusers(t *testing.T) {
	b, err := os.ReadFile("systemd/ndrbot.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	_, ds := readUnit(t)
	var lines [][]string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(l, -1))
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one sysusers line, got %v", lines)
	}
	f := lines[0]
	if len(f) != 6 || f[0] != "u" || f[2] != "-" || f[4] != "/var/lib/ndrbot" || f[5] != "/usr/sbin/nologin" {
		t.Errorf("sysusers line %v: want u NAME - \"GECOS\" /var/lib/ndrbot /usr/sbin/nologin", f)
	}
	if user := values(ds, "Service", "User"); len(user) != 1 || user[0] != f[1] {
		t.Errorf("the unit runs as %v, sysusers creates %s", user, f[1])
	}
}

// With systemd-analyze on PATH: the unit passes `verify` and its exposure score
// stays at or below 2.0 ("OK") in `security --offline`.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not on PATH")
	}
	text, _ := readUnit(t)
	// verify checks that ExecStart's binary exists: stand the test binary in for it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text = regexp.MustCompile(`(?m)^ExecStart=\S+`).ReplaceAllString(text, "ExecStart="+self)
	unit := filepath.Join(t.TempDir(), "ndrbot.service")
	writeFile(t, unit, text)
	if out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput(); err != nil || strings.Contains(string(out), "ndrbot.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, lastLines(string(out), 3))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

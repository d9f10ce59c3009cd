package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ndrbot/ndrbot/config"
)

const chartDir = "helm/ndrbot"

// longName is 73 characters with a "-" as the 63rd.
const longName = "ndrbot-for-the-exchange-incident-response-team-of-contoso-west-eu-primary"

// The release is named like the chart, so its Service is named "ndrbot": the case
// in which Kubernetes' service links would hand the bot NDRBOT_* variables.
var testRelease = release{Name: "ndrbot", Namespace: "mail-ops"}

// fakeSecret is the Secret an operator creates (secrets.existingSecret): the keys the
// chart's defaults and the ci/ values files name.
var fakeSecret = map[string]string{
	"slack-bot-token":      "xoxb-1-test",
	"slack-app-token":      "xapp-1-test",
	"slack-signing-secret": "8f742231b10e8888abcd99yyyzzz85a5",
	"store-dsn":            "postgres://ndrbot:pw@postgres.mail-ops:5432/ndrbot?sslmode=verify-full",
	"audit-key":            "0123456789abcdef0123456789abcdef",
	"svc-ndrbot.keytab":    "\x05\x02not-a-real-keytab",
	"graph-client-secret":  "graph-secret",
	"watch-client-state":   "client-state",
}

const (
	configMount = "/etc/ndrbot"
	secretMount = "/run/secrets/ndrbot"
	dataMount   = "/var/lib/ndrbot"
)

func mustChart(t *testing.T) *chart {
	t.Helper()
	c, err := loadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ciValues(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRender(t *testing.T, values ...[]byte) *rendered {
	t.Helper()
	r, err := mustChart(t).render(testRelease, values...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The shape most sites start with: Socket Mode (no inbound traffic), SQLite on a
// volume, one replica.
func TestChartSocketSQLite(t *testing.T) {
	r := mustRender(t, ciValues(t, "socket-sqlite-values.yaml"))
	p := checkRelease(t, r)
	wantKinds(t, r, "ConfigMap", "Deployment", "PersistentVolumeClaim", "ServiceAccount")

	if n, _ := num(dig(p.deploy.obj, "spec", "replicas")); n != 1 {
		t.Errorf("replicas = %v, want 1", n)
	}
	if s := str(dig(p.deploy.obj, "spec", "strategy", "type")); s != "Recreate" {
		t.Errorf("strategy %q: with SQLite the old pod must be gone before the new one opens the file", s)
	}
	if p.container["ports"] != nil || p.container["livenessProbe"] != nil || p.container["readinessProbe"] != nil {
		t.Errorf("socket mode without health: the container should listen on nothing and have no probes")
	}
	pvc := r.one(t, "PersistentVolumeClaim")
	if claim := str(dig(p.volumes["data"], "persistentVolumeClaim", "claimName")); claim != pvc.name() {
		t.Errorf("data volume claims %q, the chart's claim is %q", claim, pvc.name())
	}
	if str(dig(pvc.obj, "metadata", "annotations", "helm.sh/resource-policy")) != "keep" {
		t.Error("the claim holding the audit trail should survive helm uninstall (helm.sh/resource-policy: keep)")
	}
	if !slices.Equal(list(dig(pvc.obj, "spec", "accessModes")), []any{"ReadWriteOnce"}) {
		t.Errorf("accessModes %v", dig(pvc.obj, "spec", "accessModes"))
	}
	if _, ok := p.env["NDRBOT_SLACK_SIGNING_SECRET_FILE"]; ok {
		t.Error("socket mode has no signing secret")
	}

	cfg := p.cfg
	if cfg.Slack.Mode != "socket" || cfg.Store.Driver != "sqlite" {
		t.Errorf("slack.mode %q, store.driver %q", cfg.Slack.Mode, cfg.Store.Driver)
	}
	if want := p.root + dataMount + "/ndrbot.db"; cfg.Store.Path != want {
		t.Errorf("store.path %q, want %q (on the data volume)", cfg.Store.Path, want)
	}
	p.wantSecret(t, "slack.bot_token", cfg.Slack.BotToken, cfg.Slack.BotTokenFile, "slack-bot-token")
	p.wantSecret(t, "slack.app_token", cfg.Slack.AppToken, cfg.Slack.AppTokenFile, "slack-app-token")
	p.wantSecret(t, "store.audit_key", cfg.Store.AuditKey, cfg.Store.AuditKeyFile, "audit-key")
	ex := cfg.Targets["exchange"]
	if ex.KeytabFile != p.root+secretMount+"/svc-ndrbot.keytab" || ex.Krb5Conf != p.root+configMount+"/krb5.conf" {
		t.Errorf("exchange target: keytab_file %q, krb5_conf %q", ex.KeytabFile, ex.Krb5Conf)
	}
	if !strings.Contains(r.notes, "socket mode") || !strings.Contains(r.notes, "No probes") {
		t.Errorf("NOTES:\n%s", r.notes)
	}
}

// Several replicas: HTTP mode behind an Ingress, PostgreSQL, probes, a ServiceMonitor
// and the NDR watch's notification endpoint.
func TestChartHTTPPostgres(t *testing.T) {
	r := mustRender(t, ciValues(t, "http-postgres-values.yaml"))
	p := checkRelease(t, r)
	wantKinds(t, r, "ConfigMap", "Deployment", "Ingress", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor")

	if n, _ := num(dig(p.deploy.obj, "spec", "replicas")); n != 3 {
		t.Errorf("replicas = %v, want 3", n)
	}
	if s := str(dig(p.deploy.obj, "spec", "strategy", "type")); s != "RollingUpdate" {
		t.Errorf("strategy %q, want RollingUpdate", s)
	}
	if _, ok := p.volumes["data"]; ok {
		t.Error("postgres needs no data volume")
	}
	if _, ok := p.env["NDRBOT_STORE_PATH"]; ok {
		t.Error("postgres: NDRBOT_STORE_PATH set")
	}
	if img := str(p.container["image"]); !strings.HasSuffix(img, "@sha256:"+strings.Repeat("0", 64)) {
		t.Errorf("image %q: a digest wins over the tag", img)
	}

	p.wantProbe(t, "livenessProbe", "/healthz", 9090)
	p.wantProbe(t, "readinessProbe", "/readyz", 9090)
	p.wantProbe(t, "startupProbe", "/healthz", 9090)
	p.wantPort(t, "slack", 3000)
	p.wantPort(t, "watch", 8081)

	sm := r.one(t, "ServiceMonitor")
	ep := mapOf(list(dig(sm.obj, "spec", "endpoints"))[0])
	if str(ep["port"]) != "health" || str(ep["path"]) != "/metrics" {
		t.Errorf("ServiceMonitor endpoint %v, want port health, path /metrics", ep)
	}
	if str(dig(sm.obj, "metadata", "labels", "release")) != "prometheus" {
		t.Error("serviceMonitor.labels not applied")
	}
	paths := map[string]string{}
	for _, rule := range list(dig(r.one(t, "Ingress").obj, "spec", "rules")) {
		for _, hp := range list(dig(rule, "http", "paths")) {
			paths[str(dig(hp, "path"))] = str(dig(hp, "backend", "service", "port", "name"))
		}
	}
	if !reflect.DeepEqual(paths, map[string]string{"/slack": "slack", "/graph": "watch"}) {
		t.Errorf("ingress paths → ports %v", paths)
	}
	if n, _ := num(dig(r.one(t, "PodDisruptionBudget").obj, "spec", "maxUnavailable")); n != 1 {
		t.Error("PodDisruptionBudget: maxUnavailable 1")
	}

	cfg := p.cfg
	if cfg.Slack.Mode != "http" || cfg.Slack.Listen != ":3000" || cfg.Store.Driver != "postgres" || cfg.Watch.Listen != ":8081" {
		t.Errorf("slack.mode %q, slack.listen %q, store.driver %q, watch.listen %q",
			cfg.Slack.Mode, cfg.Slack.Listen, cfg.Store.Driver, cfg.Watch.Listen)
	}
	p.wantSecret(t, "slack.signing_secret", cfg.Slack.SigningSecret, cfg.Slack.SigningSecretFile, "slack-signing-secret")
	p.wantSecret(t, "store.dsn", cfg.Store.DSN, cfg.Store.DSNFile, "store-dsn")
	p.wantSecret(t, "targets.graph.client_secret", cfg.Targets["graph"].ClientSecret, cfg.Targets["graph"].ClientSecretFile, "graph-client-secret")
	if _, ok := p.env["NDRBOT_SLACK_APP_TOKEN_FILE"]; ok {
		t.Error("http mode has no app-level token")
	}
}

// The health port and paths are values: probes, Service and ServiceMonitor follow.
func TestChartHealthConfigurable(t *testing.T) {
	r := mustRender(t, ciValues(t, "http-postgres-values.yaml"), []byte(`
health: {port: 9102, livenessPath: /live, readinessPath: /ready, metricsPath: /prom}
`))
	p := checkRelease(t, r)
	p.wantProbe(t, "livenessProbe", "/live", 9102)
	p.wantProbe(t, "readinessProbe", "/ready", 9102)
	ep := mapOf(list(dig(r.one(t, "ServiceMonitor").obj, "spec", "endpoints"))[0])
	if str(ep["path"]) != "/prom" {
		t.Errorf("ServiceMonitor path %v", ep["path"])
	}
}

// Only what has no default: the Secret.
func TestChartMinimalValues(t *testing.T) {
	r := mustRender(t, []byte(`secrets: {existingSecret: ndrbot}`))
	p := checkRelease(t, r)
	wantKinds(t, r, "ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount") // the Service: health and metrics
	if p.cfg.Server.Listen != ":9090" {
		t.Errorf("server.listen %q: the health port", p.cfg.Server.Listen)
	}
	if img := str(p.container["image"]); img != "ghcr.io/ndrbot/ndrbot:0.1.0" {
		t.Errorf("image %q: the release image, tagged with the chart's appVersion", img)
	}
	if p.cfg.Log.Format != "json" {
		t.Errorf("log.format %q", p.cfg.Log.Format)
	}
}

func TestChartVariants(t *testing.T) {
	base := ciValues(t, "socket-sqlite-values.yaml")
	t.Run("no persistence", func(t *testing.T) {
		r := mustRender(t, base, []byte(`store: {persistence: {enabled: false}}`))
		p := checkRelease(t, r)
		wantKinds(t, r, "ConfigMap", "Deployment", "ServiceAccount")
		if dig(p.volumes["data"], "emptyDir") == nil {
			t.Errorf("data volume %v, want emptyDir", p.volumes["data"])
		}
		if !strings.Contains(r.notes, "WARNING: no persistence") {
			t.Errorf("NOTES should warn:\n%s", r.notes)
		}
	})
	t.Run("existing claim", func(t *testing.T) {
		r := mustRender(t, base, []byte(`store: {persistence: {existingClaim: ndrbot-db}}`))
		p := checkRelease(t, r)
		wantKinds(t, r, "ConfigMap", "Deployment", "ServiceAccount")
		if claim := str(dig(p.volumes["data"], "persistentVolumeClaim", "claimName")); claim != "ndrbot-db" {
			t.Errorf("claimName %q", claim)
		}
	})
	t.Run("storage class", func(t *testing.T) {
		for class, want := range map[string]any{"fast": "fast", "-": ""} {
			r := mustRender(t, base, fmt.Appendf(nil, "store: {persistence: {storageClass: %q}}", class))
			checkRelease(t, r)
			if got := dig(r.one(t, "PersistentVolumeClaim").obj, "spec", "storageClassName"); got != want {
				t.Errorf("storageClass %q: storageClassName %v, want %q", class, got, want)
			}
		}
	})
	t.Run("playbooks", func(t *testing.T) {
		r := mustRender(t, base, []byte(`
playbooks:
  site-check.yaml: |
    id: site-check
`))
		p := checkRelease(t, r)
		wantKinds(t, r, "ConfigMap", "ConfigMap", "Deployment", "PersistentVolumeClaim", "ServiceAccount")
		want := p.root + configMount + "/playbooks"
		if p.cfg.Playbooks.Dir != want {
			t.Errorf("playbooks.dir %q, want %q", p.cfg.Playbooks.Dir, want)
		}
		if b, err := os.ReadFile(filepath.Join(want, "site-check.yaml")); err != nil || string(b) != "id: site-check\n" {
			t.Errorf("playbook file: %q, %v", b, err)
		}
	})
	t.Run("no audit key", func(t *testing.T) {
		r := mustRender(t, base, []byte(`
secrets: {keys: {auditKey: ""}}
config: {store: {checkpoints: {channel: ""}}}
`))
		p := checkRelease(t, r)
		if _, ok := p.env["NDRBOT_STORE_AUDIT_KEY_FILE"]; ok {
			t.Error("auditKey \"\" still sets NDRBOT_STORE_AUDIT_KEY_FILE")
		}
		if !strings.Contains(r.notes, "WARNING: no audit key") {
			t.Errorf("NOTES should warn:\n%s", r.notes)
		}
	})
	t.Run("long name", func(t *testing.T) {
		r := mustRender(t, base, []byte("fullnameOverride: "+longName))
		p := checkRelease(t, r)
		if want := longName[:62]; p.deploy.name() != want {
			t.Errorf("name %q, want %q (63 characters, trailing - trimmed)", p.deploy.name(), want)
		}
	})
	t.Run("extra env and names", func(t *testing.T) {
		r := mustRender(t, base, []byte(`
fullnameOverride: chatops
env: [{name: NDRBOT_LOG_LEVEL, value: debug}]
podSecurityContext: {runAsUser: null, runAsGroup: null, fsGroup: 1000680000}
`))
		p := checkRelease(t, r)
		if p.deploy.name() != "chatops" || p.cfg.Log.Level != "debug" {
			t.Errorf("name %q, log.level %q", p.deploy.name(), p.cfg.Log.Level)
		}
		sc := mapOf(dig(p.pod, "securityContext"))
		if _, ok := sc["runAsUser"]; ok {
			t.Error("runAsUser: null should leave the uid to the platform")
		}
		if n, _ := num(sc["fsGroup"]); n != 1000680000 {
			t.Errorf("fsGroup %v (a large id must not turn into 1.00068e+09)", sc["fsGroup"])
		}
	})
}

// refusals are values (over ci/socket-sqlite-values.yaml) the chart must refuse,
// and the message it refuses them with.
var refusals = []struct{ name, values, want string }{
	{"replicas with sqlite", `replicas: 2`, "replicas > 1 needs store.driver postgres"},
	{"unknown mode", `slack: {mode: rtm}`, `slack.mode must be socket or http, not "rtm"`},
	{"unknown driver", `store: {driver: mysql}`, `store.driver must be sqlite or postgres, not "mysql"`},
	{"servicemonitor without health", `{health: {enabled: false}, serviceMonitor: {enabled: true}}`, "serviceMonitor.enabled needs health.enabled"},
	{"ingress in socket mode", `ingress: {enabled: true, host: x.example.com}`, "ingress.enabled is for slack.mode http"},
	{"ingress without host", `{slack: {mode: http}, ingress: {enabled: true}}`, "ingress.host"},
	{"no secret", `secrets: {existingSecret: ""}`, "secrets.existingSecret"},
	{"no image", `image: {repository: ""}`, "image.repository"},
	{"no app token key", `secrets: {keys: {slackAppToken: ""}}`, "secrets.keys.slackAppToken"},
	{"no signing secret key", `{slack: {mode: http}, secrets: {keys: {slackSigningSecret: ""}}}`, "secrets.keys.slackSigningSecret"},
	{"no dsn key", `{store: {driver: postgres}, secrets: {keys: {storeDsn: ""}}}`, "secrets.keys.storeDsn"},
	{"config file in configFiles", `configFiles: {ndrbot.yaml: "x: 1"}`, "configFiles must not hold ndrbot.yaml"},
}

// Combinations the bot cannot run with are refused at render time.
func TestChartRefuses(t *testing.T) {
	base := ciValues(t, "socket-sqlite-values.yaml")
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mustChart(t).render(testRelease, base, []byte(tc.values))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("values %s: got error %v, want one containing %q", tc.values, err, tc.want)
			}
		})
	}
	// The defaults alone lack the Secret.
	if _, err := mustChart(t).render(testRelease); err == nil || !strings.Contains(err.Error(), "secrets.existingSecret") {
		t.Errorf("the chart's defaults render without a Secret: %v", err)
	}
}

// Why the pod spec says enableServiceLinks: false: the variables Kubernetes would
// inject for the release's Services are NDRBOT_* names that are no settings. The
// bot starts with them (each is a warning, not a refusal: a chart someone else
// wrote, or a Service named ndrbot beside it, must not stop it), but the chart
// keeps them away so its start-up log carries no warning for them.
func TestChartServiceLinksWouldOnlyWarn(t *testing.T) {
	r := mustRender(t, ciValues(t, "http-postgres-values.yaml"))
	var env []string
	for _, svc := range r.all("Service") {
		env = append(env, serviceLinkEnv(svc)...)
	}
	var links []string
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "NDRBOT_") {
			links = append(links, name)
		}
	}
	if len(links) == 0 {
		t.Fatalf("no NDRBOT_* service link variables for Services %v", env)
	}
	_, src, err := config.Load(config.LoadOptions{Env: env, Kinds: configKinds(t)})
	if err != nil {
		t.Fatalf("the bot would refuse to start with service link variables %v: %v", env, err)
	}
	for _, name := range links {
		if !slices.ContainsFunc(src.Warnings, func(w string) bool { return strings.HasPrefix(w, name+": not a setting") }) {
			t.Errorf("no warning for %s: %q", name, src.Warnings)
		}
	}
	// checkRelease holds every Deployment to enableServiceLinks: false.
	checkRelease(t, r)
}

// serviceLinkEnv lists the Docker-link style variables the kubelet sets for svc.
func serviceLinkEnv(svc manifest) []string {
	prefix := strings.ToUpper(strings.ReplaceAll(svc.name(), "-", "_"))
	env := []string{prefix + "_SERVICE_HOST=10.0.0.1"}
	for i, p := range list(dig(svc.obj, "spec", "ports")) {
		port, _ := num(dig(p, "port"))
		proto := strings.ToUpper(str(dig(p, "protocol")))
		pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, int(port), proto)
		if i == 0 {
			env = append(env, fmt.Sprintf("%s_SERVICE_PORT=%d", prefix, int(port)),
				fmt.Sprintf("%s_PORT=%s://10.0.0.1:%d", prefix, strings.ToLower(proto), int(port)))
		}
		env = append(env, fmt.Sprintf("%s_SERVICE_PORT_%s=%d", prefix, strings.ToUpper(strings.ReplaceAll(str(dig(p, "name")), "-", "_")), int(port)),
			fmt.Sprintf("%s=%s://10.0.0.1:%d", pp, strings.ToLower(proto), int(port)),
			pp+"_PROTO="+strings.ToLower(proto), fmt.Sprintf("%s_PORT=%d", pp, int(port)), pp+"_ADDR=10.0.0.1")
	}
	return env
}

// With a helm binary on PATH (not in CI), the renderer above is held against Helm
// itself: lint --strict, the same manifests from helm template for each shape the
// tests render, and the same refusals.
func TestChartMatchesHelm(t *testing.T) {
	helm, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("helm is not on PATH; the chart is checked with the test's own renderer")
	}
	socket, http := ciValues(t, "socket-sqlite-values.yaml"), ciValues(t, "http-postgres-values.yaml")
	cases := map[string][][]byte{
		"socket-sqlite": {socket},
		"http-postgres": {http},
		"minimal":       {[]byte("secrets: {existingSecret: s}")},
		"variants": {socket, []byte(`{store: {persistence: {enabled: false}}, playbooks: {a.yaml: "id: a"},
			fullnameOverride: chatops, podSecurityContext: {runAsUser: null, fsGroup: 1000680000},
			env: [{name: NDRBOT_LOG_LEVEL, value: debug}], secrets: {keys: {auditKey: ""}}}`)},
		"health": {http, []byte("health: {port: 9102, livenessPath: /live}")},
		// Names are cut at 63 characters without a trailing "-"; a value deleted
		// with null renders as nothing.
		"edges": {socket, []byte(`{fullnameOverride: ` + longName + `, image: {pullPolicy: null}}`)},
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			args := helmValueArgs(t, values)
			if out, err := exec.Command(helm, append([]string{"lint", "--strict", chartDir}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			out, err := exec.Command(helm, append([]string{"template", testRelease.Name, chartDir,
				"-n", testRelease.Namespace, "--kube-version", "1.30.0"}, args...)...).Output()
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			docs, err := splitManifests(string(out))
			if err != nil {
				t.Fatal(err)
			}
			ours := mustRender(t, values...)
			want := map[string]string{}
			for _, d := range ours.docs {
				want[d.kind()+"/"+d.name()] = canonical(d.obj)
			}
			got := map[string]string{}
			for _, d := range docs {
				m := manifest{obj: d}
				got[m.kind()+"/"+m.name()] = canonical(d)
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s differs:\nhelm: %s\nours: %s", k, got[k], w)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("helm renders %s, the test's renderer does not", k)
				}
			}
		})
	}
	for _, tc := range refusals {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			args := helmValueArgs(t, [][]byte{socket, []byte(tc.values)})
			out, err := exec.Command(helm, append([]string{"template", "x", chartDir, "--kube-version", "1.30.0"}, args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("helm template with %s: %v\n%s", tc.values, err, out)
			}
		})
	}
}

func helmValueArgs(t *testing.T, values [][]byte) []string {
	t.Helper()
	var args []string
	for i, v := range values {
		f := filepath.Join(t.TempDir(), fmt.Sprintf("values-%d.yaml", i))
		writeFile(t, f, string(v))
		args = append(args, "-f", f)
	}
	return args
}

// canonical is a manifest as JSON without the config checksum, which hashes the
// ConfigMap's text (Helm's toYaml and this renderer's format YAML differently).
func canonical(obj map[string]any) string {
	obj = deepCopy(obj)
	if a := mapOf(dig(obj, "spec", "template", "metadata", "annotations")); a != nil {
		delete(a, "checksum/config")
	}
	if d := mapOf(obj["data"]); d != nil {
		// Compare the ConfigMap's embedded YAML by content, not by formatting.
		for k, v := range d {
			var doc any
			if s, ok := v.(string); ok && strings.HasSuffix(k, ".yaml") && yaml.Unmarshal([]byte(s), &doc) == nil {
				d[k] = doc
			}
		}
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

// --- checks every release is held to ---

// pod is the release's Deployment with its pod spec, its one container, and the
// configuration the bot loads in it (see materialize).
type pod struct {
	deploy    manifest
	pod       map[string]any
	container map[string]any
	volumes   map[string]map[string]any // by name
	mounts    map[string]map[string]any // by volume name
	env       map[string]string
	root      string // where the pod's volumes were written
	cfg       config.Config
}

// checkRelease runs the checks every rendering must pass and returns the pod.
func checkRelease(t *testing.T, r *rendered) *pod {
	t.Helper()
	for _, d := range r.docs {
		if str(d.obj["apiVersion"]) == "" || d.kind() == "" || d.name() == "" {
			t.Errorf("%s: a manifest without apiVersion, kind or metadata.name: %v", d.source, d.obj)
		}
		if ns := str(dig(d.obj, "metadata", "namespace")); ns != testRelease.Namespace {
			t.Errorf("%s %s: namespace %q", d.kind(), d.name(), ns)
		}
		// A Service's name is a DNS label; label values have the same limit.
		if d.kind() == "Service" && len(d.name()) > 63 {
			t.Errorf("Service %s: name longer than 63", d.name())
		}
		for _, labels := range []any{dig(d.obj, "metadata", "labels"), dig(d.obj, "spec", "template", "metadata", "labels")} {
			for k, v := range mapOf(labels) {
				if len(str(v)) > 63 {
					t.Errorf("%s %s: label %s longer than 63", d.kind(), d.name(), k)
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, d := range r.docs {
		if k := d.kind() + "/" + d.name(); seen[k] {
			t.Errorf("%s rendered twice", k)
		} else {
			seen[k] = true
		}
	}

	d := r.one(t, "Deployment")
	p := &pod{deploy: d, pod: mapOf(dig(d.obj, "spec", "template", "spec")),
		volumes: map[string]map[string]any{}, mounts: map[string]map[string]any{}, env: map[string]string{}}
	checkPodSecurity(t, p.pod)
	podLabels := mapOf(dig(d.obj, "spec", "template", "metadata", "labels"))
	if sel := mapOf(dig(d.obj, "spec", "selector", "matchLabels")); len(sel) == 0 || !subset(sel, podLabels) {
		t.Errorf("Deployment selector %v does not select its pods %v", sel, podLabels)
	}
	if a := str(dig(d.obj, "spec", "template", "metadata", "annotations", "checksum/config")); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(a) {
		t.Errorf("checksum/config annotation %q", a)
	}
	for _, sa := range r.all("ServiceAccount") {
		if str(p.pod["serviceAccountName"]) != sa.name() {
			t.Errorf("serviceAccountName %v, the chart's ServiceAccount is %s", p.pod["serviceAccountName"], sa.name())
		}
		if sa.obj["automountServiceAccountToken"] != false {
			t.Error("ServiceAccount: automountServiceAccountToken should be false")
		}
	}

	containers := list(p.pod["containers"])
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	p.container = mapOf(containers[0])
	c := p.container
	if cmd, args := list(c["command"]), list(c["args"]); len(cmd) == 0 || len(args) == 0 || args[0] != "serve" {
		t.Errorf("command %v args %v: want <command> serve", cmd, args)
	}
	if str(c["image"]) == "" {
		t.Error("no image")
	}
	for _, k := range []string{"requests.cpu", "requests.memory", "limits.memory"} {
		group, res, _ := strings.Cut(k, ".")
		if dig(c, "resources", group, res) == nil {
			t.Errorf("resources.%s is not set", k)
		}
	}

	for _, v := range list(p.pod["volumes"]) {
		p.volumes[str(dig(v, "name"))] = mapOf(v)
	}
	for _, m := range list(c["volumeMounts"]) {
		name := str(dig(m, "name"))
		if p.volumes[name] == nil {
			t.Errorf("volumeMount %q has no volume", name)
		}
		p.mounts[name] = mapOf(m)
	}
	for name := range p.volumes {
		if p.mounts[name] == nil {
			t.Errorf("volume %q is not mounted", name)
		}
	}
	wantMount := func(vol, path string, readOnly bool) {
		t.Helper()
		m := p.mounts[vol]
		if str(m["mountPath"]) != path || (m["readOnly"] == true) != readOnly {
			t.Errorf("volume %s mounted as %v, want %s readOnly=%v", vol, m, path, readOnly)
		}
	}
	wantMount("config", configMount, true)
	wantMount("secrets", secretMount, true)
	wantMount("tmp", "/tmp", false) // the root filesystem is read-only
	if dig(p.volumes["tmp"], "emptyDir") == nil {
		t.Error("/tmp should be an emptyDir")
	}
	if sec := str(dig(p.volumes["secrets"], "secret", "secretName")); sec != str(dig(r.values, "secrets", "existingSecret")) {
		t.Errorf("secret volume uses %q, not secrets.existingSecret", sec)
	}
	sqlite := str(dig(r.values, "store", "driver")) == "sqlite"
	if sqlite {
		wantMount("data", dataMount, false)
	}

	for _, e := range list(c["env"]) {
		name := str(dig(e, "name"))
		if dig(e, "valueFrom") != nil {
			t.Errorf("env %s: valueFrom (secrets are files, not variables)", name)
		}
		if _, dup := p.env[name]; dup {
			t.Errorf("env %s set twice", name)
		}
		p.env[name] = str(dig(e, "value"))
	}
	// Every *_FILE variable names a key of the Secret that secrets.keys lists.
	keys := map[string]bool{}
	for _, k := range mapOf(dig(r.values, "secrets", "keys")) {
		if s := str(k); s != "" {
			keys[s] = true
		}
	}
	for name, value := range p.env {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		key, ok := strings.CutPrefix(value, secretMount+"/")
		if !ok || !keys[key] {
			t.Errorf("%s=%s is not a file of the Secret's keys %v", name, value, keys)
		}
	}

	checkServices(t, r, p, podLabels)
	materialize(t, r, p)
	return p
}

func checkPodSecurity(t *testing.T, spec map[string]any) {
	t.Helper()
	// See the comment in deployment.yaml and TestChartServiceLinksWouldStopTheBot.
	if v, ok := spec["enableServiceLinks"]; !ok || v != false {
		t.Errorf("enableServiceLinks is %v, want false: service links inject NDRBOT_* variables the bot refuses", v)
	}
	if spec["automountServiceAccountToken"] != false {
		t.Error("automountServiceAccountToken should be false: the bot does not use the Kubernetes API")
	}
	sc := mapOf(spec["securityContext"])
	if sc["runAsNonRoot"] != true {
		t.Error("pod securityContext.runAsNonRoot should be true")
	}
	if str(dig(sc, "seccompProfile", "type")) != "RuntimeDefault" {
		t.Error("pod seccompProfile should be RuntimeDefault")
	}
	if str(sc["fsGroupChangePolicy"]) != "OnRootMismatch" {
		t.Error("fsGroupChangePolicy should be OnRootMismatch (a recursive chmod would open the database to the group)")
	}
	if uid, ok := num(sc["runAsUser"]); ok && uid == 0 {
		t.Error("runAsUser 0")
	}
	for _, c := range list(spec["containers"]) {
		csc := mapOf(dig(c, "securityContext"))
		for k, want := range map[string]any{"runAsNonRoot": true, "readOnlyRootFilesystem": true,
			"allowPrivilegeEscalation": false, "privileged": false} {
			if csc[k] != want {
				t.Errorf("container securityContext.%s = %v, want %v", k, csc[k], want)
			}
		}
		if !slices.Equal(list(dig(csc, "capabilities", "drop")), []any{"ALL"}) || dig(csc, "capabilities", "add") != nil {
			t.Errorf("capabilities %v, want drop [ALL] and nothing added", csc["capabilities"])
		}
		if str(dig(csc, "seccompProfile", "type")) != "RuntimeDefault" {
			t.Error("container seccompProfile should be RuntimeDefault")
		}
	}
}

// checkServices holds Services, the Ingress, the ServiceMonitor and the PDB to the pod:
// selectors select it, named ports exist.
func checkServices(t *testing.T, r *rendered, p *pod, podLabels map[string]any) {
	t.Helper()
	containerPorts := map[string]float64{}
	for _, cp := range list(p.container["ports"]) {
		n, _ := num(dig(cp, "containerPort"))
		containerPorts[str(dig(cp, "name"))] = n
	}
	servicePorts := map[string]map[string]bool{} // service → port names
	for _, svc := range r.all("Service") {
		if sel := mapOf(dig(svc.obj, "spec", "selector")); len(sel) == 0 || !subset(sel, podLabels) {
			t.Errorf("Service %s selector %v does not select the pods %v", svc.name(), sel, podLabels)
		}
		servicePorts[svc.name()] = map[string]bool{}
		for _, sp := range list(dig(svc.obj, "spec", "ports")) {
			target := str(dig(sp, "targetPort"))
			if _, ok := containerPorts[target]; !ok {
				t.Errorf("Service %s port %v targets %q, not a container port %v", svc.name(), dig(sp, "name"), target, containerPorts)
			}
			servicePorts[svc.name()][str(dig(sp, "name"))] = true
		}
	}
	if len(containerPorts) > 0 && len(r.all("Service")) == 0 {
		t.Errorf("the container listens on %v but there is no Service", containerPorts)
	}
	for _, ing := range r.all("Ingress") {
		for _, rule := range list(dig(ing.obj, "spec", "rules")) {
			for _, hp := range list(dig(rule, "http", "paths")) {
				svc, port := str(dig(hp, "backend", "service", "name")), str(dig(hp, "backend", "service", "port", "name"))
				if !servicePorts[svc][port] {
					t.Errorf("Ingress %s → %s:%s, no such Service port", ing.name(), svc, port)
				}
			}
		}
	}
	for _, sm := range r.all("ServiceMonitor") {
		sel := mapOf(dig(sm.obj, "spec", "selector", "matchLabels"))
		for _, svc := range r.all("Service") {
			if !subset(sel, mapOf(dig(svc.obj, "metadata", "labels"))) {
				t.Errorf("ServiceMonitor %s selector %v misses Service %s", sm.name(), sel, svc.name())
			}
			for _, ep := range list(dig(sm.obj, "spec", "endpoints")) {
				if !servicePorts[svc.name()][str(dig(ep, "port"))] {
					t.Errorf("ServiceMonitor endpoint port %v is not a port of Service %s", dig(ep, "port"), svc.name())
				}
			}
		}
	}
	for _, pdb := range r.all("PodDisruptionBudget") {
		if sel := mapOf(dig(pdb.obj, "spec", "selector", "matchLabels")); !subset(sel, podLabels) {
			t.Errorf("PodDisruptionBudget selector %v", sel)
		}
	}
}

// materialize writes the pod's volumes under a temporary root as Kubernetes would
// mount them (ConfigMaps from the rendering, the Secret from fakeSecret, empty
// directories for claims and emptyDirs), rewrites the container's environment and
// the config file's absolute paths into that root, then loads the configuration as
// the bot would in the pod (config.Load with the container's environment) and
// validates it (config.Validate, which also reads the files it names).
func materialize(t *testing.T, r *rendered, p *pod) {
	t.Helper()
	p.root = t.TempDir()
	var mountPaths []string
	for name, m := range p.mounts {
		dir := filepath.Join(p.root, str(m["mountPath"]))
		mountPaths = append(mountPaths, str(m["mountPath"]))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		vol := p.volumes[name]
		switch {
		case vol["projected"] != nil:
			for _, src := range list(dig(vol, "projected", "sources")) {
				cm := dig(src, "configMap")
				if cm == nil {
					t.Fatalf("volume %s: unexpected projected source %v", name, src)
				}
				writeConfigMap(t, r, str(dig(cm, "name")), list(dig(cm, "items")), dir)
			}
		case vol["configMap"] != nil:
			writeConfigMap(t, r, str(dig(vol, "configMap", "name")), list(dig(vol, "configMap", "items")), dir)
		case vol["secret"] != nil:
			for k, v := range fakeSecret {
				writeFile(t, filepath.Join(dir, k), v)
			}
		case vol["persistentVolumeClaim"] != nil, vol["emptyDir"] != nil:
		default:
			t.Fatalf("volume %s: unexpected source %v", name, vol)
		}
	}
	sort.Slice(mountPaths, func(i, j int) bool { return len(mountPaths[i]) > len(mountPaths[j]) })
	rewrite := func(s string) string {
		for _, mp := range mountPaths {
			if s == mp || strings.HasPrefix(s, mp+"/") {
				return p.root + s
			}
		}
		return s
	}

	cfgPath := p.env[configEnv]
	if cfgPath != configMount+"/ndrbot.yaml" {
		t.Fatalf("%s=%q, want %s/ndrbot.yaml", configEnv, cfgPath, configMount)
	}
	local := rewrite(cfgPath)
	b, err := os.ReadFile(local)
	if err != nil {
		t.Fatalf("the config file is not in the config volume: %v", err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("ndrbot.yaml: %v", err)
	}
	out, err := yaml.Marshal(rewriteStrings(doc, rewrite))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, local, string(out))

	var env []string
	for name, value := range p.env {
		env = append(env, name+"="+rewrite(value))
	}
	slices.Sort(env)
	p.cfg = checkEnvSettings(t, "the chart's pod", env)
	if err := p.cfg.Validate(configKinds(t)); err != nil {
		t.Fatalf("ndrbot config check would fail in the pod:\n%v\nndrbot.yaml:\n%s\nenv: %v", err, b, env)
	}
	// Whatever the bot writes is on a writable volume.
	if p.cfg.Store.Driver == "sqlite" {
		if dir := filepath.Dir(p.cfg.Store.Path); dir != p.root+dataMount {
			t.Errorf("store.path %s is not on the data volume", p.cfg.Store.Path)
		}
	}
	if f := p.cfg.Store.Checkpoints.File; f != "" {
		t.Errorf("store.checkpoints.file %s: the pod has no append-only place for it; use the channel", f)
	}
}

func writeConfigMap(t *testing.T, r *rendered, name string, items []any, dir string) {
	t.Helper()
	var cm *manifest
	for _, d := range r.all("ConfigMap") {
		if d.name() == name {
			cm = &d
		}
	}
	if cm == nil {
		t.Fatalf("the pod mounts ConfigMap %s, which the chart does not render", name)
	}
	data := mapOf(cm.obj["data"])
	if len(items) == 0 {
		for k, v := range data {
			writeFile(t, filepath.Join(dir, k), str(v))
		}
		return
	}
	for _, it := range items {
		key := str(dig(it, "key"))
		v, ok := data[key]
		if !ok {
			t.Errorf("ConfigMap %s has no key %q", name, key)
		}
		writeFile(t, filepath.Join(dir, str(dig(it, "path"))), str(v))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func rewriteStrings(v any, f func(string) string) any {
	switch v := v.(type) {
	case string:
		return f(v)
	case map[string]any:
		for k, x := range v {
			v[k] = rewriteStrings(x, f)
		}
	case []any:
		for i, x := range v {
			v[i] = rewriteStrings(x, f)
		}
	}
	return v
}

func (p *pod) wantSecret(t *testing.T, key string, value config.Secret, file, secretKey string) {
	t.Helper()
	got, err := config.ResolveSecret(value, file)
	if err != nil || got != fakeSecret[secretKey] {
		t.Errorf("%s resolves to %q (%v), want the Secret's key %s", key, got, err, secretKey)
	}
}

func (p *pod) wantProbe(t *testing.T, probe, path string, port float64) {
	t.Helper()
	hg := mapOf(dig(p.container, probe, "httpGet"))
	if hg == nil {
		t.Errorf("no %s", probe)
		return
	}
	if str(hg["path"]) != path || str(hg["port"]) != "health" {
		t.Errorf("%s: %v, want path %s on port health", probe, hg, path)
	}
	p.wantPort(t, "health", port)
}

func (p *pod) wantPort(t *testing.T, name string, port float64) {
	t.Helper()
	for _, cp := range list(p.container["ports"]) {
		if str(dig(cp, "name")) == name {
			if n, _ := num(dig(cp, "containerPort")); n != port {
				t.Errorf("container port %s is %v, want %v", name, n, port)
			}
			return
		}
	}
	t.Errorf("no container port named %s", name)
}

func (r *rendered) all(kind string) []manifest {
	var out []manifest
	for _, d := range r.docs {
		if d.kind() == kind {
			out = append(out, d)
		}
	}
	return out
}

func (r *rendered) one(t *testing.T, kind string) manifest {
	t.Helper()
	all := r.all(kind)
	if len(all) != 1 {
		t.Fatalf("%d %s manifests, want 1", len(all), kind)
	}
	return all[0]
}

func wantKinds(t *testing.T, r *rendered, want ...string) {
	t.Helper()
	var got []string
	for _, d := range r.docs {
		got = append(got, d.kind())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
}

func subset(sub, super map[string]any) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

// The chart runs the image the repository builds: its entrypoint is the chart's
// command, its user the pod's, and the config file and data volume are where the
// image expects them. Checked against each Dockerfile present (skipped without one).
func TestChartMatchesImage(t *testing.T) {
	vals := mustChart(t).defaults
	command := list(vals["command"])
	uid, _ := num(dig(vals, "podSecurityContext", "runAsUser"))
	checked := 0
	for _, path := range []string{"../Dockerfile", "../scripts/image/Dockerfile.release"} {
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		checked++
		// The final stage is what runs.
		text := string(b)
		if i := strings.LastIndex(text, "\nFROM "); i >= 0 {
			text = text[i:]
		}
		if m := regexp.MustCompile(`(?m)^ENTRYPOINT\s+(\[.*\])\s*$`).FindStringSubmatch(text); m == nil {
			t.Errorf("%s: no ENTRYPOINT [\"…\"] in its last stage", path)
		} else {
			var entry []any
			if err := json.Unmarshal([]byte(m[1]), &entry); err != nil || !reflect.DeepEqual(entry, command) {
				t.Errorf("%s: ENTRYPOINT %s, the chart's command is %v", path, m[1], command)
			}
		}
		if m := regexp.MustCompile(`(?m)^USER\s+(\d+)(?::\d+)?\s*$`).FindStringSubmatch(text); m == nil || m[1] != fmt.Sprint(int(uid)) {
			t.Errorf("%s: USER %v, the pod runs as %v", path, m, uid)
		}
		if !strings.Contains(text, dataMount) {
			t.Errorf("%s does not mention %s, where the chart mounts the SQLite volume", path, dataMount)
		}
	}
	if checked == 0 {
		t.Skip("no Dockerfile in the repository")
	}
}

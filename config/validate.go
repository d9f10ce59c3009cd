package config

import (
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the full key, with a list index where it matters:
	// "targets.exchange.endpoints[1]".
	Key string
	// Msg says what is wrong and, where it is not obvious, what to do.
	Msg string
	// Origin is where the value came from ("ndrbot.yaml:12", "env NDRBOT_LOG_LEVEL"),
	// "" when unknown or a default.
	Origin string
}

func (p Problem) Error() string {
	if p.Origin == "" {
		return p.Key + ": " + p.Msg
	}
	return p.Key + ": " + p.Msg + " (from " + p.Origin + ")"
}

// ValidationError lists every problem Validate found.
type ValidationError struct {
	Problems []Problem
}

// Error puts one problem on each line, like errors.Join.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each Problem.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Validate checks the configuration without running anything and reports every
// problem at once as a *ValidationError. It reads the files the configuration names
// (ca_file, *_file, playbooks.dir) to check they are usable. kinds are the
// target kinds the build knows: a target's kind must be one of them, and its
// spec checks the rest of the target.
func (c Config) Validate(kinds Kinds) error {
	v := &validator{c: c, kinds: kinds}
	v.targets()
	v.playbooks()
	v.lab()
	v.store()
	v.slack()
	v.access()
	v.log()
	if l := v.c.Server.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			v.add("server.listen", "%q is not host:port (e.g. :9464 or 127.0.0.1:9464; empty turns it off)", l)
		}
	}
	v.watch()
	v.secrets(reflect.ValueOf(c), "")
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	c        Config
	kinds    Kinds
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	origin := v.c.origins[baseKey(key)]
	if origin == "default" {
		origin = ""
	}
	v.problems = append(v.problems, Problem{Key: key, Msg: fmt.Sprintf(format, args...), Origin: origin})
}

// baseKey drops a list index: origins are recorded per list, not per item.
func baseKey(key string) string {
	if i := strings.IndexByte(key, '['); i >= 0 {
		return key[:i]
	}
	return key
}

func (v *validator) targets() {
	names := sortedKeys(v.c.Targets)
	byEnv := map[string]string{}
	for _, name := range names {
		prefix := "targets." + name
		if !validEntryName(name) {
			v.add(prefix, "%q is not a valid target name: use lower-case letters, digits, '-' and '_', starting with a letter", name)
		} else if other, clash := byEnv[envSegment(name)]; clash {
			v.add(prefix, "collides with target %q: both are configured by %s_*; rename one", other, EnvName(prefix))
		} else {
			byEnv[envSegment(name)] = name
		}
		v.target(prefix, v.c.Targets[name])
	}
}

func (v *validator) target(prefix string, t Target) {
	kind, known := v.kinds.Lookup(t.Kind)
	switch {
	case t.Kind == "":
		v.add(prefix+".kind", "required (%s)%s", strings.Join(v.kinds.Names(), "|"), v.envOnlyHint(prefix))
		return
	case !known:
		v.add(prefix+".kind", "unknown kind %q (%s)", t.Kind, strings.Join(v.kinds.Names(), "|"))
		return
	}
	v.notUsedByKind(prefix, t, kind)
	v.endpoints(prefix, t, kind)

	if t.MaxConcurrency < 0 {
		v.add(prefix+".max_concurrency", "%d must not be negative (0 means the executor's default)", t.MaxConcurrency)
	}
	if kind.Validate != nil {
		kind.Validate(prefix, t, v.add)
	}
}

// envOnlyHint explains a target with no kind that exists only because an environment
// variable named it: most likely a misspelt target name in that variable.
func (v *validator) envOnlyHint(prefix string) string {
	var vars []string
	for k, o := range v.c.origins {
		if !strings.HasPrefix(k, prefix+".") {
			continue
		}
		name, fromEnv := strings.CutPrefix(o, "env ")
		if !fromEnv && o != "default" {
			return "" // the file defines it
		}
		if fromEnv {
			vars = append(vars, name)
		}
	}
	if len(vars) == 0 {
		return ""
	}
	slices.Sort(vars)
	return fmt.Sprintf("; the target is defined only by %s: a misspelt target name?", strings.Join(vars, ", "))
}

// notUsedByKind reports the keys set on t that its kind does not read but
// another kind does (KindSpec.Keys).
func (v *validator) notUsedByKind(prefix string, t Target, kind KindSpec) {
	if kind.AnyKey {
		return
	}
	rv := reflect.ValueOf(t)
	for i := range rv.NumField() {
		key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("mapstructure"), ",")
		if rv.Field(i).IsZero() || slices.Contains(kind.Keys, key) {
			continue
		}
		if kinds := v.kinds.keyKinds(key); kinds != nil {
			v.add(prefix+"."+key, "not used by kind %s (only by %s)", t.Kind, strings.Join(kinds, ", "))
		}
	}
}

func (v *validator) endpoints(prefix string, t Target, kind KindSpec) {
	seen := map[string]int{}
	for i, ep := range t.Endpoints {
		key := fmt.Sprintf("%s.endpoints[%d]", prefix, i)
		if strings.TrimSpace(ep) == "" {
			v.add(key, "empty endpoint")
			continue
		}
		if first, dup := seen[strings.ToLower(ep)]; dup {
			v.add(key, "%q repeats endpoints[%d]", ep, first)
			continue
		}
		seen[strings.ToLower(ep)] = i
		if kind.Endpoint == nil {
			continue
		}
		if msg := kind.Endpoint(ep); msg != "" {
			v.add(key, "%s", msg)
		}
	}
}

// CheckURL returns what is wrong with an http(s) endpoint URL, or "": what is
// a what (WS-Management URL), example shows a good one.
func CheckURL(raw, what, example string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("%q is not an http(s) %s (e.g. %s)", raw, what, example)
	}
	if u.User != nil {
		// Redacted: the point of the message is that a password is in there.
		return fmt.Sprintf("%q carries credentials: use username and the password settings instead", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%q must not have a query or fragment", raw)
	}
	if !ValidHost(u.Hostname()) {
		return fmt.Sprintf("%q: %q is not a host name or IP address", raw, u.Hostname())
	}
	if p := u.Port(); p != "" && !ValidPort(p) {
		return fmt.Sprintf("%q: port %s out of range 1..65535", raw, p)
	}
	return ""
}

// CheckHostPort returns what is wrong with an endpoint dialled as host,
// host:port, an IP or [IPv6]:port, or "".
func CheckHostPort(raw string) string {
	if _, err := netip.ParseAddr(raw); err == nil {
		return ""
	}
	host, port := raw, ""
	if h, p, err := net.SplitHostPort(raw); err == nil {
		host, port = h, p
	} else if strings.ContainsAny(raw, ":[]/") {
		return fmt.Sprintf("%q is not host[:port] (e.g. contoso-com.mail.protection.outlook.com:25)", raw)
	}
	if !ValidHost(host) {
		return fmt.Sprintf("%q: %q is not a host name or IP address", raw, host)
	}
	if port != "" && !ValidPort(port) {
		return fmt.Sprintf("%q: port %s out of range 1..65535", raw, port)
	}
	return ""
}

// ValidPort says whether p is a TCP port number, 1..65535.
func ValidPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// ValidHost says whether h is an IP address or a DNS host name.
func ValidHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return ValidHostname(h)
}

// ValidHostname checks DNS host name syntax (letters, digits, hyphens; labels of 1–63;
// one trailing dot allowed).
func ValidHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

// CheckTLS reports what is wrong with the settings of t that only mean
// something for https endpoints (ca_file, insecure_skip_verify), for the kinds
// that read them.
func CheckTLS(prefix string, t Target, report Report) {
	if t.CAFile != "" {
		if b, err := os.ReadFile(t.CAFile); err != nil {
			report(prefix+".ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			report(prefix+".ca_file", "%s holds no PEM certificate", t.CAFile)
		}
	}
	if t.InsecureSkipVerify {
		if i := FirstHTTP(t.Endpoints); i >= 0 {
			report(prefix+".insecure_skip_verify", "only applies to https, but endpoints[%d] %q is http", i, t.Endpoints[i])
		}
		if t.CAFile != "" {
			report(prefix+".insecure_skip_verify", "turns off the verification ca_file is for: set one or the other")
		}
	}
}

// FirstHTTP returns the index of the first plain-http URL among endpoints, or -1.
func FirstHTTP(endpoints []string) int {
	for i, ep := range endpoints {
		if u, err := url.Parse(ep); err == nil && u.Scheme == "http" {
			return i
		}
	}
	return -1
}

func (v *validator) playbooks() {
	dir := v.c.Playbooks.Dir
	if dir == "" {
		return
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		v.add("playbooks.dir", "%v", err)
	case !fi.IsDir():
		v.add("playbooks.dir", "%s is not a directory", dir)
	}
}

func (v *validator) lab() {
	ts := v.c.Lab.TimeScale
	if !(ts >= 1) || math.IsInf(ts, 0) {
		v.add("lab.time_scale", "%v must be a number of at least 1 (1 runs waits in real time)", ts)
	}
	if v.c.Lab.Latency < 0 {
		v.add("lab.latency", "%s must not be negative", v.c.Lab.Latency)
	}
}

func (v *validator) store() {
	st := v.c.Store
	switch st.Driver {
	case "sqlite":
		if st.DSN != "" || st.DSNFile != "" {
			v.add("store.dsn", "is for driver postgres; sqlite uses store.path")
		}
	case "postgres":
		if st.DSN == "" && st.DSNFile == "" {
			v.add("store.dsn", "driver postgres needs a DSN: set %s or store.dsn_file", EnvName("store.dsn"))
		}
	default:
		v.add("store.driver", "%q must be sqlite or postgres", st.Driver)
	}
	cp := st.Checkpoints
	if (cp.File != "" || cp.Channel != "") && st.AuditKey == "" && st.AuditKeyFile == "" {
		v.add("store.checkpoints", "are signed with the audit key: set store.audit_key_file (or %s)", EnvName("store.audit_key"))
	}
	if cp.Channel != "" && !channelIDRE().MatchString(cp.Channel) {
		v.add("store.checkpoints.channel", "%q is not a Slack channel id (C…/G…)", cp.Channel)
	}
	if cp.Interval < time.Minute {
		v.add("store.checkpoints.interval", "%s must be at least 1m", cp.Interval)
	}
}

func (v *validator) slack() {
	sl := v.c.Slack
	if sl.Mode != "socket" && sl.Mode != "http" {
		v.add("slack.mode", "%q must be socket or http", sl.Mode)
	}
	if u, err := url.Parse(sl.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.add("slack.api_url", "%q is not an http(s) URL", sl.APIURL)
	}
	if sl.TeamID != "" && !slackTeamRE().MatchString(sl.TeamID) {
		v.add("slack.team_id", "%q is not a Slack workspace id (T…) or Enterprise Grid organisation id (E…)", sl.TeamID)
	}
	if sl.AppID != "" && !slackAppRE().MatchString(sl.AppID) {
		v.add("slack.app_id", "%q is not a Slack app id (A…, under Basic Information → App Credentials)", sl.AppID)
	}
	for i, id := range append(append(slices.Clone(v.c.Access.Responders), v.c.Access.Approvers...), v.c.Access.Admins...) {
		if !chatIDRE().MatchString(id) {
			v.add("access", "entry %d %q is not a Slack user id (U…/W…) or user-group id (S…)", i, id)
		}
	}
}

var (
	chatIDRE    = lazyre.New(`^[UWS][A-Z0-9]{2,}$`)
	slackTeamRE = lazyre.New(`^[TE][A-Z0-9]{2,}$`)
	slackAppRE  = lazyre.New(`^A[A-Z0-9]{2,}$`)
	channelIDRE = lazyre.New(`^[CG][A-Z0-9]{2,}$`)
)

func (v *validator) access() {
	if m := v.c.Access.CLIFourEyes; m != CLIFourEyesAllow && m != CLIFourEyesRefuse {
		v.add("access.cli_four_eyes", "%q must be %s or %s", m, CLIFourEyesRefuse, CLIFourEyesAllow)
	}
}

func (v *validator) log() {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, v.c.Log.Level) {
		v.add("log.level", "%q must be debug, info, warn or error", v.c.Log.Level)
	}
	if v.c.Log.Format != "text" && v.c.Log.Format != "json" {
		v.add("log.format", "%q must be text or json", v.c.Log.Format)
	}
}

var secretType = reflect.TypeFor[Secret]()

// secrets applies the secret rules to every Secret in the configuration, so a section
// added later (slack.bot_token, store.dsn) is covered by declaring the field: a value
// from the YAML file is rejected, X and X_file together are rejected, and X_file must
// be readable and not empty.
func (v *validator) secrets(rv reflect.Value, prefix string) {
	switch rv.Kind() {
	case reflect.Map:
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			v.secrets(rv.MapIndex(k), join(prefix, k.String()))
		}
		return
	case reflect.Struct:
	default:
		return
	}
	rt := rv.Type()
	keyOf := func(i int) string {
		k, _, _ := strings.Cut(rt.Field(i).Tag.Get("mapstructure"), ",")
		return k
	}
	for i := range rt.NumField() {
		if !rt.Field(i).IsExported() {
			continue
		}
		key := keyOf(i)
		if rt.Field(i).Type != secretType {
			v.secrets(rv.Field(i), join(prefix, key))
			continue
		}
		full := join(prefix, key)
		value := Secret(rv.Field(i).String())
		file, fileKey := "", ""
		for j := range rt.NumField() {
			if keyOf(j) == key+"_file" && rt.Field(j).Type.Kind() == reflect.String {
				file, fileKey = rv.Field(j).String(), join(prefix, key+"_file")
			}
		}
		how := EnvName(full)
		if fileKey != "" {
			how += " or " + fileKey
		}
		origin := v.c.origins[full]
		if value != "" && origin != "" && !strings.HasPrefix(origin, "env ") && origin != "default" {
			v.add(full, "secrets come from env or *_file, never the YAML itself: remove it and set %s", how)
		} else if value != "" && file != "" {
			v.add(full, "set together with %s: use one or the other", fileKey)
		}
		if file != "" {
			if _, err := ResolveSecret("", file); err != nil {
				v.add(fileKey, "%v", err)
			}
		}
	}
}

var (
	// watchMailboxRE: a user principal name or an object id (GUID).
	watchMailboxRE = lazyre.New(`^(?:[A-Za-z0-9.!#$%&'*+=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)
	// watchFolderRE: a well-known folder name or a Graph folder id (URL-safe).
	watchFolderRE = lazyre.New(`^[A-Za-z0-9=_+-]{1,512}$`)
)

// watch checks the NDR watch when it is enabled: the mailbox and the graph target
// that reads it, the counting settings, where alerts go, and what notifications
// mode needs.
func (v *validator) watch() {
	w := v.c.Watch
	if !w.Enabled {
		return
	}
	switch {
	case w.Mailbox == "":
		v.add("watch.mailbox", "required: the postmaster, journal or shared mailbox the NDRs arrive in (user principal name or object id)")
	case !watchMailboxRE().MatchString(w.Mailbox):
		v.add("watch.mailbox", "%q is neither a user principal name (postmaster@contoso.com) nor an object id (GUID)", w.Mailbox)
	}
	if !watchFolderRE().MatchString(w.Folder) {
		v.add("watch.folder", "%q is not a folder name (inbox) or a folder id", w.Folder)
	}
	switch t, ok := v.c.Targets[w.Target]; {
	case w.Target == "":
		v.add("watch.target", "required: the graph target whose app registration reads the mailbox")
	case !ok:
		v.add("watch.target", "target %q is not configured: add a graph target (targets.%s.kind: graph, tenant_id, client_id and a credential)", w.Target, w.Target)
	case t.Kind != KindGraph:
		v.add("watch.target", "target %q is kind %s: the watch reads the mailbox through a graph target", w.Target, t.Kind)
	case t.TenantID == "" || t.ClientID == "":
		v.add("watch.target", "graph target %q has no app registration yet: set targets.%s.tenant_id, client_id and a credential", w.Target, w.Target)
	}
	if w.PollInterval < 10*time.Second || w.PollInterval > time.Hour {
		v.add("watch.poll_interval", "%s is out of range 10s..1h (Graph throttles faster polling; slower misses storms)", w.PollInterval)
	}
	if w.Window < time.Minute || w.Window > 24*time.Hour {
		v.add("watch.window", "%s is out of range 1m..24h", w.Window)
	}
	if w.Threshold < 1 {
		v.add("watch.threshold", "%d must be at least 1", w.Threshold)
	}
	if w.Cooldown < w.Window {
		v.add("watch.cooldown", "%s is shorter than watch.window (%s): one storm would alert more than once", w.Cooldown, w.Window)
	}
	if v.c.AlertChannel() == "" {
		v.add("watch.channel", "no channel for the alerts: set watch.channel or slack.escalation_channel")
	}
	switch w.Mode {
	case WatchPoll:
		if w.NotificationURL != "" {
			v.add("watch.notification_url", "only used in notifications mode (watch.mode is poll)")
		}
	case WatchNotifications:
		v.watchNotifications(w)
	default:
		v.add("watch.mode", "%q must be poll or notifications", w.Mode)
	}
}

func (v *validator) watchNotifications(w Watch) {
	switch u, err := url.Parse(w.NotificationURL); {
	case w.NotificationURL == "":
		v.add("watch.notification_url", "required in notifications mode: the public HTTPS URL Graph posts change notifications to")
	case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "":
		v.add("watch.notification_url", "%q is not an https URL without credentials or fragment (Graph only notifies https endpoints)", w.NotificationURL)
	}
	if w.ClientState == "" && w.ClientStateFile == "" {
		v.add("watch.client_state", "required in notifications mode: set %s or watch.client_state_file", EnvName("watch.client_state"))
	} else if cs, err := ResolveSecret(w.ClientState, w.ClientStateFile); err == nil && len(cs) > 128 {
		v.add("watch.client_state", "is %d characters; Graph accepts at most 128", len(cs))
	}
	if _, _, err := net.SplitHostPort(w.Listen); err != nil {
		v.add("watch.listen", "%q is not host:port (e.g. :8081)", w.Listen)
	}
}

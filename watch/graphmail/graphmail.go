// Package graphmail is the NDR watch's mailbox source on Microsoft Graph: a delta
// query over one mail folder (GET /users/{mailbox}/mailFolders/{folder}/messages/delta),
// polled — no inbound endpoint. It signs in with a graph target's app registration
// (client secret or certificate, from env or file) and talks to the target's cloud
// (graph.ResolveEndpoints: global, GCC High, DoD, China, or graph_url /
// authority_url); bearer tokens only ever go to that Graph host.
//
// The executors/graph executor reads ids and times only; the watch needs the
// subject, the text body and the sender to recognise an NDR, so it asks for them
// ($select, Prefer: outlook.body-content-type="text"). It needs the application
// permission Mail.Read — scope it to the NDR mailbox with an application access
// policy (New-ApplicationAccessPolicy -AccessRight RestrictAccess).
package graphmail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	textser "github.com/microsoft/kiota-serialization-text-go"
	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	coreauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/watch"
)

// Fields the watch reads of each message.
var selectFields = []string{"id", "receivedDateTime", "subject", "body", "from", "sender"}

// Options configure a Source.
type Options struct {
	// Mailbox is the user id or principal name; Folder a well-known name or id
	// (default inbox).
	Mailbox string
	Folder  string
	// Backfill is how far back a new sync starts (receivedDateTime ge now-Backfill):
	// the watch's window, so a fresh start sees the storm under way.
	Backfill time.Duration
	// PageSize is asked with Prefer: odata.maxpagesize (default 50); MaxPages bounds
	// one Delta call (default 100), the next poll continues.
	PageSize int
	MaxPages int
	// Dial routes every connection (tests reach national-cloud names through it).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Now  func() time.Time
	Log  *slog.Logger
}

// Source reads one mailbox folder by delta query. It is safe for concurrent use.
type Source struct {
	name      string
	ep        graph.Endpoints
	target    config.Target
	o         Options
	transport *http.Transport

	mu      sync.Mutex
	adapter abs.RequestAdapter
	print   [32]byte
}

var _ watch.Source = (*Source)(nil)

var idRE = regexp.MustCompile(`^[A-Za-z0-9=_+.@-]{1,512}$`)

// New builds the source for graph target t (configured as name). It reads the
// credential but does not contact Microsoft.
func New(name string, t config.Target, o Options) (*Source, error) {
	fail := func(format string, args ...any) (*Source, error) {
		return nil, fmt.Errorf("watch: graph target %q: "+format, append([]any{name}, args...)...)
	}
	if t.Kind != config.KindGraph {
		return fail("kind is %q, not graph", t.Kind)
	}
	if t.TenantID == "" || t.ClientID == "" {
		return fail("tenant_id and client_id are required")
	}
	if o.Folder == "" {
		o.Folder = "inbox"
	}
	if !idRE.MatchString(o.Mailbox) || !idRE.MatchString(o.Folder) {
		return fail("mailbox %q or folder %q is not a Graph id or principal name", o.Mailbox, o.Folder)
	}
	ep, err := graph.ResolveEndpoints(t)
	if err != nil {
		return fail("%w", err)
	}
	if o.Backfill <= 0 {
		o.Backfill = watch.DefaultWindow
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.MaxPages <= 0 {
		o.MaxPages = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // only when configured
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fail("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fail("ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.ForceAttemptHTTP2 = true
	tr.ResponseHeaderTimeout = 2 * time.Minute
	if o.Dial != nil {
		tr.DialContext = o.Dial
	}
	s := &Source{name: name, ep: ep, target: t, o: o, transport: tr}
	if _, err := s.session(); err != nil {
		return fail("%w", err)
	}
	return s, nil
}

// Key names the watch in the store: mailbox and folder, lower case.
func (s *Source) Key() string { return strings.ToLower(s.o.Mailbox + "/" + s.o.Folder) }

// session returns the adapter, rebuilt when the credential files changed (a rotated
// secret or certificate is used by the next poll, without a restart).
func (s *Source) session() (abs.RequestAdapter, error) {
	cred, print, err := s.credential()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adapter != nil && s.print == print {
		return s.adapter, nil
	}
	auth, err := coreauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{s.ep.Scope}, []string{s.ep.GraphHost})
	if err != nil {
		return nil, fmt.Errorf("authentication provider: %w", err)
	}
	pf := absser.NewParseNodeFactoryRegistry()
	pf.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	pf.ContentTypeAssociatedFactories["text/plain"] = textser.NewTextParseNodeFactory()
	sf := absser.NewSerializationWriterFactoryRegistry()
	sf.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()
	client := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(s.transport,
			core.NewGraphTelemetryHandler(&core.GraphClientOptions{GraphServiceLibraryVersion: "1.89.0"}),
			khttp.NewParametersNameDecodingHandler(), khttp.NewUserAgentHandler()),
		// Links are followed by Delta itself, after checking their host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, pf, sf, client)
	if err != nil {
		return nil, fmt.Errorf("request adapter: %w", err)
	}
	adapter.SetBaseUrl(s.ep.GraphURL)
	s.adapter, s.print = adapter, print
	return adapter, nil
}

// credential reads the target's secret or certificate anew.
func (s *Source) credential() (azcore.TokenCredential, [32]byte, error) {
	t := s.target
	co := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.ep.AuthorityURL},
		Transport: &http.Client{Transport: s.transport},
		Retry:     policy.RetryOptions{MaxRetries: 2},
	}
	h := sha256.New()
	var print [32]byte
	hasSecret := t.ClientSecret != "" || t.ClientSecretFile != ""
	switch {
	case hasSecret && t.CertificateFile != "":
		return nil, print, errors.New("client_secret and certificate_file: configure exactly one credential")
	case hasSecret:
		secret, err := config.ResolveSecret(t.ClientSecret, t.ClientSecretFile)
		if err != nil {
			return nil, print, fmt.Errorf("client_secret: %w", err)
		}
		h.Write([]byte("secret\x00" + secret))
		copy(print[:], h.Sum(nil))
		c, err := azidentity.NewClientSecretCredential(t.TenantID, t.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: !s.ep.InstanceDiscovery})
		return c, print, err
	case t.CertificateFile != "":
		data, err := os.ReadFile(t.CertificateFile)
		if err != nil {
			return nil, print, fmt.Errorf("certificate_file: %w", err)
		}
		var password []byte
		if t.CertificatePassword != "" || t.CertificatePasswordFile != "" {
			pw, err := config.ResolveSecret(t.CertificatePassword, t.CertificatePasswordFile)
			if err != nil {
				return nil, print, fmt.Errorf("certificate_password: %w", err)
			}
			password = []byte(pw)
		}
		h.Write([]byte("cert\x00"))
		h.Write(data)
		h.Write(append([]byte{0}, password...))
		copy(print[:], h.Sum(nil))
		certs, key, err := azidentity.ParseCertificates(data, password)
		if err != nil {
			// azidentity cannot decrypt encrypted PEM keys (the executor can); say so.
			return nil, print, fmt.Errorf("certificate_file: %w (the watch reads unencrypted PEM keys and PKCS#12)", err)
		}
		c, err := azidentity.NewClientCertificateCredential(t.TenantID, t.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: !s.ep.InstanceDiscovery})
		return c, print, err
	}
	return nil, print, errors.New("no credential: set client_secret (env or client_secret_file) or certificate_file")
}

// ErrResync is Graph's answer to a delta link it no longer knows (410 Gone,
// SyncStateNotFound): Delta starts a new sync by itself.
var ErrResync = errors.New("delta sync state expired")

// Delta implements watch.Source. cursor is the @odata.deltaLink (or, when a round
// stopped at MaxPages or on an error, the @odata.nextLink) a previous call returned;
// "" starts a sync of the messages received since now-Backfill. On an error, the
// messages read before it and the link to continue from come back with it, so the
// watch keeps the progress.
func (s *Source) Delta(ctx context.Context, cursor string) ([]watch.Message, string, error) {
	adapter, err := s.session()
	if err != nil {
		return nil, "", err
	}
	link, fresh := cursor, cursor == ""
	if fresh {
		link = s.initialLink()
	}
	var out []watch.Message
	seen := map[string]int{}
	for pages := 0; pages < s.o.MaxPages; pages++ {
		p, err := s.page(ctx, adapter, link)
		if errors.Is(err, ErrResync) && !fresh && len(out) == 0 {
			s.o.Log.Warn("delta link expired; starting a new sync", "component", "watch", "mailbox", s.o.Mailbox)
			link, fresh = s.initialLink(), true
			pages = -1
			continue
		}
		if err != nil {
			return out, link, err
		}
		for _, m := range p.Value {
			if m.Removed != nil || m.ID == "" {
				continue // deleted since: nothing to count
			}
			msg := m.message()
			if i, dup := seen[m.ID]; dup {
				out[i] = msg // changed again within the round: keep the latest
				continue
			}
			seen[m.ID] = len(out)
			out = append(out, msg)
		}
		switch {
		case p.DeltaLink != "":
			if _, err := s.checkLink(p.DeltaLink); err != nil {
				return out, link, err
			}
			return out, p.DeltaLink, nil
		case p.NextLink == "":
			return out, link, errors.New("graph delta: a page with neither @odata.nextLink nor @odata.deltaLink")
		}
		if _, err := s.checkLink(p.NextLink); err != nil {
			return out, link, err
		}
		link = p.NextLink
	}
	return out, link, nil // more to read: the next poll continues from link
}

func (s *Source) initialLink() string {
	q := url.Values{}
	q.Set("$select", strings.Join(selectFields, ","))
	q.Set("$filter", "receivedDateTime ge "+s.o.Now().Add(-s.o.Backfill).UTC().Format("2006-01-02T15:04:05Z"))
	return s.ep.GraphURL + "/users/" + url.PathEscape(s.o.Mailbox) + "/mailFolders/" + url.PathEscape(s.o.Folder) +
		"/messages/delta()?" + strings.ReplaceAll(q.Encode(), "+", "%20")
}

// checkLink keeps links on the Graph host: the bearer token goes nowhere else.
func (s *Source) checkLink(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("graph delta: link is not a URL: %w", err)
	}
	base, _ := url.Parse(s.ep.GraphURL)
	if !strings.EqualFold(u.Hostname(), s.ep.GraphHost) || u.Scheme != base.Scheme {
		return nil, fmt.Errorf("graph delta: link leads to %s://%s, not to Graph at %s", u.Scheme, u.Host, s.ep.GraphHost)
	}
	return u, nil
}

type deltaPage struct {
	Value     []rawMessage `json:"value"`
	NextLink  string       `json:"@odata.nextLink"`
	DeltaLink string       `json:"@odata.deltaLink"`
}

type rawMessage struct {
	ID               string          `json:"id"`
	ReceivedDateTime string          `json:"receivedDateTime"`
	Subject          string          `json:"subject"`
	Body             *itemBody       `json:"body"`
	From             *recipient      `json:"from"`
	Sender           *recipient      `json:"sender"`
	Removed          json.RawMessage `json:"@removed"`
}

type itemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

type recipient struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

func (m rawMessage) message() watch.Message {
	out := watch.Message{ID: m.ID, Subject: m.Subject}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, m.ReceivedDateTime); err == nil {
			out.ReceivedDateTime = t.UTC()
			break
		}
	}
	if m.Body != nil {
		out.Body = m.Body.Content
		if strings.EqualFold(m.Body.ContentType, "html") {
			out.Body = htmlText(out.Body)
		}
	}
	switch {
	case m.From != nil && m.From.EmailAddress.Address != "":
		out.From = m.From.EmailAddress.Address
	case m.Sender != nil:
		out.From = m.Sender.EmailAddress.Address
	}
	return out
}

var (
	blockRE = regexp.MustCompile(`(?i)<(?:br\s*/?|/p|/div|/tr|/h[1-6]|/li|/table)\s*>`)
	cellRE  = regexp.MustCompile(`(?i)</t[dh]\s*>`)
	dropRE  = regexp.MustCompile(`(?is)<(script|style|head)\b.*?</(script|style|head)\s*>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// htmlText turns an HTML body into lines of text, in case Graph ignored the
// text preference: blocks and rows end lines, cells are tab-separated.
func htmlText(s string) string {
	s = dropRE.ReplaceAllString(s, "")
	s = blockRE.ReplaceAllString(s, "\n")
	s = cellRE.ReplaceAllString(s, "\t")
	s = tagRE.ReplaceAllString(s, "")
	return html.UnescapeString(s)
}

// page GETs one delta page.
func (s *Source) page(ctx context.Context, adapter abs.RequestAdapter, link string) (deltaPage, error) {
	u, err := s.checkLink(link)
	if err != nil {
		return deltaPage{}, err
	}
	ri := abs.NewRequestInformation()
	ri.Method = abs.GET
	ri.SetUri(*u)
	ri.Headers.TryAdd("Accept", "application/json")
	ri.Headers.Add("Prefer", fmt.Sprintf("odata.maxpagesize=%d", s.o.PageSize))
	ri.Headers.Add("Prefer", `outlook.body-content-type="text"`)
	res, err := adapter.SendPrimitive(ctx, ri, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return deltaPage{}, describe("delta", err)
	}
	body, _ := res.([]byte)
	var p deltaPage
	if err := json.Unmarshal(body, &p); err != nil {
		return deltaPage{}, fmt.Errorf("graph delta: decoding the answer: %w", err)
	}
	return p, nil
}

// describe turns an SDK error into one line with Graph's status, code, message and
// request id (what Microsoft support asks for); a 410 or SyncStateNotFound is ErrResync.
func describe(op string, err error) error {
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		code, msg, reqID := "", "", ""
		if me := oe.GetErrorEscaped(); me != nil {
			code, msg = deref(me.GetCode()), deref(me.GetMessage())
			if ie := me.GetInnerError(); ie != nil {
				reqID = deref(ie.GetRequestId())
			}
		}
		status := oe.ResponseStatusCode
		e := fmt.Errorf("graph %s: %d %s: %s (request-id %s)", op, status, code, truncate(msg, 200), reqID)
		if status == http.StatusGone || strings.EqualFold(code, "SyncStateNotFound") || strings.EqualFold(code, "syncStateInvalid") ||
			strings.EqualFold(code, "resyncRequired") {
			return errors.Join(ErrResync, e)
		}
		return e
	}
	var ae *abs.ApiError
	if errors.As(err, &ae) {
		e := fmt.Errorf("graph %s: %d: %s", op, ae.ResponseStatusCode, truncate(ae.Message, 200))
		if ae.ResponseStatusCode == http.StatusGone {
			return errors.Join(ErrResync, e)
		}
		return e
	}
	return fmt.Errorf("graph %s: %w", op, err)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

package graphmail_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/sqlite"
	"github.com/ndrbot/ndrbot/watch"
	"github.com/ndrbot/ndrbot/watch/graphmail"
)

const (
	secret  = "Zq8~watch-S3CR3T-never-print"
	mailbox = "postmaster@contoso.com"
)

func target(fake *graphfake.Server) config.Target {
	return config.Target{Kind: config.KindGraph, TenantID: fake.Tenant, ClientID: fake.ClientID,
		ClientSecret: config.Secret(secret), CAFile: fake.CAFile(), GraphURL: fake.URL, AuthorityURL: fake.URL, Cloud: config.CloudGlobal}
}

func ids(ms []watch.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// The delta round against the fake Graph, through azidentity and the kiota adapter:
// a first sync from now-backfill, paged; then only what changed.
func TestDeltaAgainstGraphfake(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	fake := graphfake.New(t, graphfake.WithClientSecret(secret)) // pages of 2
	fake.Deliver(mailbox, "inbox", "old", now.Add(-time.Hour))
	for i := range 5 {
		fake.Deliver(mailbox, "inbox", fmt.Sprintf("m%d", i), now.Add(-time.Duration(4-i)*time.Minute))
	}
	fake.Deliver("someone@contoso.com", "inbox", "elsewhere", now)
	src, err := graphmail.New("graph", target(fake), graphmail.Options{Mailbox: mailbox, Backfill: 5 * time.Minute, Now: func() time.Time { return now }})
	require.NoError(t, err)
	assert.Equal(t, "postmaster@contoso.com/inbox", src.Key())

	msgs, cursor, err := src.Delta(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"m0", "m1", "m2", "m3", "m4"}, ids(msgs), "received since now-5m, in this mailbox only")
	assert.True(t, msgs[0].ReceivedDateTime.Equal(now.Add(-4*time.Minute)))
	assert.Contains(t, cursor, "$deltatoken=", "the cursor is the delta link")

	reqs := fake.GraphRequests("GET", "/users/")
	require.Len(t, reqs, 3, "5 messages in pages of 2")
	first := reqs[0]
	assert.Equal(t, "/v1.0/users/postmaster@contoso.com/mailFolders/inbox/messages/delta()", first.Path)
	assert.Equal(t, "receivedDateTime ge 2026-11-23T09:55:00Z", first.Query("$filter"))
	assert.Equal(t, "id,receivedDateTime,subject,body,from,sender", first.Query("$select"))
	assert.Contains(t, first.Header.Values("Prefer"), `outlook.body-content-type="text"`)
	assert.Contains(t, first.Header.Values("Prefer"), "odata.maxpagesize=50")
	for _, r := range reqs {
		assert.Regexp(t, `^Bearer fake-access-token-`, r.Header.Get("Authorization"))
	}
	assert.Len(t, fake.TokenRequests(), 1, "one token for the round")

	// Later: two new messages, one deleted: the deleted one is left out.
	fake.Deliver(mailbox, "inbox", "m5", now.Add(time.Minute))
	fake.Deliver(mailbox, "inbox", "m6", now.Add(2*time.Minute))
	fake.Remove(mailbox, "inbox", "m1")
	msgs, cursor2, err := src.Delta(context.Background(), cursor)
	require.NoError(t, err)
	assert.Equal(t, []string{"m5", "m6"}, ids(msgs))
	assert.NotEqual(t, cursor, cursor2)
	msgs, _, err = src.Delta(context.Background(), cursor2)
	require.NoError(t, err)
	assert.Empty(t, msgs, "nothing changed since")

	for _, r := range fake.Requests() {
		if !r.IsToken() {
			assert.NotContains(t, string(r.Body)+r.RawQuery+r.Header.Get("Authorization"), secret, "only the token request carries the secret")
		}
	}
}

// A 503 storm on the delta is the watch's to retry: the error names Graph's status
// and request id, and the next round works.
func TestDeltaServiceUnavailable(t *testing.T) {
	fake := graphfake.New(t, graphfake.WithClientSecret(secret))
	fake.Deliver(mailbox, "inbox", "m0", time.Now())
	src, err := graphmail.New("graph", target(fake), graphmail.Options{Mailbox: mailbox})
	require.NoError(t, err)
	fake.AddFault(graphfake.Fault{Path: "/users", Times: 1})
	_, _, err = src.Delta(context.Background(), "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	assert.Contains(t, err.Error(), "ExtensionError")
	msgs, _, err := src.Delta(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"m0"}, ids(msgs))
}

// The watch over the fake Graph: the cursor it stores is the delta link, and a new
// watcher on the same store continues from it, counting nothing twice.
func TestWatcherOverGraphfake(t *testing.T) {
	fake := graphfake.New(t, graphfake.WithClientSecret(secret))
	for i := range 3 {
		fake.Deliver(mailbox, "inbox", fmt.Sprintf("m%d", i), time.Now().Add(-time.Minute))
	}
	src, err := graphmail.New("graph", target(fake), graphmail.Options{Mailbox: mailbox})
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ndrbot.db"), store.Options{})
	require.NoError(t, err)
	defer st.Close()
	newWatcher := func() *watch.Watcher {
		w, err := watch.New(watch.Options{Key: src.Key(), Source: src, Store: st, Thread: nopThread{}, Channel: "C0ESC"})
		require.NoError(t, err)
		return w
	}
	res, err := newWatcher().Poll(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, res.New)
	cursor, err := st.WatchCursor(context.Background(), src.Key())
	require.NoError(t, err)
	assert.Contains(t, cursor, "$deltatoken=")

	fake.Deliver(mailbox, "inbox", "m3", time.Now())
	res, err = newWatcher().Poll(context.Background())
	require.NoError(t, err)
	assert.Equal(t, watch.Result{Seen: 1, New: 1, Lag: res.Lag}, res, "the restarted watch continues from the stored delta link")
	assert.True(t, res.Lag >= 0 && res.Lag < time.Minute, "m3 arrived just now: lag %s", res.Lag)
}

type nopThread struct{}

func (nopThread) Publish(context.Context, commands.Message) error { return nil }

// graphServer is a Graph stand-in for what graphfake's messages lack (subject, body,
// sender): it serves delta pages shaped like Graph's, behind graphfake's authority.
type graphServer struct {
	*httptest.Server
	mu    sync.Mutex
	pages map[string]map[string]any // query → page
	auth  []string
	hits  []string
}

func newGraphServer(t *testing.T) *graphServer {
	g := &graphServer{pages: map[string]map[string]any{}}
	g.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.auth = append(g.auth, r.Header.Get("Authorization"))
		g.hits = append(g.hits, r.URL.RawQuery)
		key := r.URL.Query().Get("$skiptoken") + r.URL.Query().Get("$deltatoken")
		p, ok := g.pages[key]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusGone)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "SyncStateNotFound", "message": "The sync state generation is not found."}})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *graphServer) link(kind, token string) string {
	return g.URL + "/v1.0/users/postmaster@contoso.com/mailFolders/inbox/messages/delta()?$" + kind + "=" + token
}

// graphMessage is a message as Graph's delta returns it with $select and the text
// body preference.
func graphMessage(t *testing.T, id, sample string, at time.Time, contentType string) map[string]any {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ndr", sample+".txt"))
	require.NoError(t, err)
	head, body, _ := strings.Cut(string(b), "\n\n")
	var from, subject string
	for line := range strings.SplitSeq(head, "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "From":
			from = strings.TrimSpace(v)
		case "Subject":
			subject = strings.TrimSpace(v)
		}
	}
	if i := strings.LastIndex(from, "<"); i >= 0 {
		from = strings.Trim(from[i:], "<>")
	}
	if contentType == "html" {
		body = "<html><head><style>p{margin:0}</style></head><body><p>" +
			strings.ReplaceAll(strings.ReplaceAll(body, "'", "&#39;"), "\n", "<br>") + "</p></body></html>"
	}
	return map[string]any{
		"@odata.etag": `W/"CQAAABYAAAB"`, "id": id, "receivedDateTime": at.UTC().Format(time.RFC3339), "subject": subject,
		"body":   map[string]any{"contentType": contentType, "content": body},
		"from":   map[string]any{"emailAddress": map[string]any{"name": "Microsoft Outlook", "address": from}},
		"sender": map[string]any{"emailAddress": map[string]any{"name": "Microsoft Outlook", "address": from}},
	}
}

func mixedTarget(t *testing.T, fake *graphfake.Server, g *graphServer) config.Target {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := append(fake.CAPEM(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Certificate().Raw})...)
	require.NoError(t, os.WriteFile(ca, pemBytes, 0o600))
	tg := target(fake)
	tg.GraphURL, tg.CAFile = g.URL, ca
	return tg
}

// Real message shapes through the source reach the NDR parser intact — text and
// HTML bodies alike — and deleted messages are left out.
func TestDeltaMessagesReachTheParser(t *testing.T) {
	fake := graphfake.New(t, graphfake.WithClientSecret(secret))
	g := newGraphServer(t)
	at := time.Now().Add(-time.Minute)
	g.pages[""] = map[string]any{"value": []any{graphMessage(t, "AAMk-1", "ex2019-554", at, "text"),
		map[string]any{"id": "AAMk-gone", "@removed": map[string]any{"reason": "deleted"}}},
		"@odata.nextLink": g.link("skiptoken", "p2")}
	g.pages["p2"] = map[string]any{"value": []any{graphMessage(t, "AAMk-2", "exo-554-remote", at, "html"),
		graphMessage(t, "AAMk-3", "not-ndr-ordinary", at, "text")}, "@odata.deltaLink": g.link("deltatoken", "d1")}

	src, err := graphmail.New("graph", mixedTarget(t, fake, g), graphmail.Options{Mailbox: mailbox})
	require.NoError(t, err)
	msgs, cursor, err := src.Delta(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, g.link("deltatoken", "d1"), cursor)
	require.Equal(t, []string{"AAMk-1", "AAMk-2", "AAMk-3"}, ids(msgs))

	n, ok := watch.ParseNDR(msgs[0])
	require.True(t, ok, "text body")
	assert.Equal(t, "5.5.4", n.Failures[0].Code())
	assert.Equal(t, "fabrikam.com", n.Failures[0].Domain)
	assert.Equal(t, "postmaster@contoso.com", msgs[0].From)
	n, ok = watch.ParseNDR(msgs[1])
	require.True(t, ok, "HTML body, when Graph ignores the text preference:\n%s", msgs[1].Body)
	assert.Equal(t, "5.5.4", n.Failures[0].Code())
	assert.Equal(t, "northwind.example", n.Failures[0].Domain)
	assert.Equal(t, "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.onmicrosoft.com", msgs[1].From)
	_, ok = watch.ParseNDR(msgs[2])
	assert.False(t, ok)
	for _, a := range g.auth {
		assert.Regexp(t, `^Bearer fake-access-token-`, a, "the token from the authority reaches Graph")
	}

	// A delta link Graph no longer knows (410 SyncStateNotFound): a new sync.
	msgs, cursor, err = src.Delta(context.Background(), g.link("deltatoken", "expired"))
	require.NoError(t, err)
	assert.Len(t, msgs, 3, "the new sync lists the window again; the watch counts each id once")
	assert.Equal(t, g.link("deltatoken", "d1"), cursor)
	assert.Contains(t, g.hits[len(g.hits)-2], "$filter=receivedDateTime", "the new sync starts from the backfill")
}

// The watch signs in as the executor does (graph.NewClient): a certificate whose
// PEM key is encrypted, with certificate_password, works here too.
func TestDeltaWithEncryptedCertificate(t *testing.T) {
	b, err := os.ReadFile("../../executors/graph/testdata/app-encrypted.pem")
	require.NoError(t, err)
	var block *pem.Block
	for rest := b; ; {
		block, rest = pem.Decode(rest)
		require.NotNil(t, block, "a CERTIFICATE block")
		if block.Type == "CERTIFICATE" {
			break
		}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	fake := graphfake.New(t, graphfake.WithClientCert(cert))
	fake.Deliver(mailbox, "inbox", "m0", time.Now())
	tg := target(fake)
	tg.ClientSecret, tg.CertificateFile = "", "../../executors/graph/testdata/app-encrypted.pem"
	tg.CertificatePassword = "pem-pass-phrase"
	src, err := graphmail.New("graph", tg, graphmail.Options{Mailbox: mailbox})
	require.NoError(t, err)
	msgs, _, err := src.Delta(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, []string{"m0"}, ids(msgs))
	tok := fake.TokenRequests()
	require.Len(t, tok, 1)
	assert.Contains(t, string(tok[0].Body), "client_assertion=", "signed with the decrypted key")

	tg.CertificatePassword = "not-the-PASSWORD"
	_, err = graphmail.New("graph", tg, graphmail.Options{Mailbox: mailbox})
	require.ErrorContains(t, err, "wrong certificate_password")
	assert.NotContains(t, err.Error(), "not-the-PASSWORD")
}

// A link to another host is refused: the bearer token never leaves Graph.
func TestDeltaRefusesForeignLinks(t *testing.T) {
	fake := graphfake.New(t, graphfake.WithClientSecret(secret))
	g := newGraphServer(t)
	g.pages[""] = map[string]any{"value": []any{}, "@odata.nextLink": "https://evil.example/v1.0/steal?$skiptoken=x"}
	src, err := graphmail.New("graph", mixedTarget(t, fake, g), graphmail.Options{Mailbox: mailbox})
	require.NoError(t, err)
	_, _, err = src.Delta(context.Background(), "")
	assert.ErrorContains(t, err, "not to Graph at 127.0.0.1")
	_, _, err = src.Delta(context.Background(), "https://evil.example/v1.0/x")
	assert.ErrorContains(t, err, "not to Graph")
}

// cloud: usgov sends the token request to login.microsoftonline.us and the delta to
// graph.microsoft.us.
func TestDeltaNationalCloud(t *testing.T) {
	fake := graphfake.New(t, graphfake.WithClientSecret(secret))
	fake.Deliver(mailbox, "inbox", "m0", time.Now())
	tg := target(fake)
	tg.Cloud, tg.GraphURL, tg.AuthorityURL = config.CloudUSGov, "", ""
	src, err := graphmail.New("graph", tg, graphmail.Options{Mailbox: mailbox, Dial: fake.DialContext})
	require.NoError(t, err)
	msgs, _, err := src.Delta(context.Background(), "")
	require.NoError(t, err)
	assert.Len(t, msgs, 1)
	for _, r := range fake.Requests() {
		if r.IsToken() {
			assert.Equal(t, "login.microsoftonline.us", r.Host)
			assert.Equal(t, "https://graph.microsoft.us/.default", r.Scope())
		} else if r.IsGraph() {
			assert.Equal(t, "graph.microsoft.us", r.Host)
		}
	}
}

func TestNewRejects(t *testing.T) {
	fake := graphfake.New(t, graphfake.WithClientSecret(secret))
	for name, edit := range map[string]func(*config.Target, *graphmail.Options){
		"not graph":     func(tg *config.Target, _ *graphmail.Options) { tg.Kind = config.KindWinRM },
		"no tenant":     func(tg *config.Target, _ *graphmail.Options) { tg.TenantID = "" },
		"bad mailbox":   func(_ *config.Target, o *graphmail.Options) { o.Mailbox = "post master/../x" },
		"no credential": func(tg *config.Target, _ *graphmail.Options) { tg.ClientSecret = "" },
		"missing ca":    func(tg *config.Target, _ *graphmail.Options) { tg.CAFile = "/nonexistent/ca.pem" },
	} {
		t.Run(name, func(t *testing.T) {
			tg, o := target(fake), graphmail.Options{Mailbox: mailbox}
			edit(&tg, &o)
			_, err := graphmail.New("graph", tg, o)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

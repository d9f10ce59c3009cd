// Package graphmail is the NDR watch's mailbox source on Microsoft Graph: a delta
// query over one mail folder (GET /users/{mailbox}/mailFolders/{folder}/messages/delta),
// polled — no inbound endpoint. It talks to Graph through the target's graph.Client,
// as the executor does: the app registration's credential (client secret or
// certificate, encrypted PEM keys included, from env or file, re-read when it
// rotates), the target's cloud (graph.ResolveEndpoints: global, GCC High, DoD,
// China, or graph_url / authority_url), ca_file; bearer tokens only ever go to that
// Graph host. Requests are sent once: a failed round is retried by the next poll.
//
// The executors/graph executor reads ids and times only; the watch needs the
// subject, the text body and the sender to recognise an NDR, so it asks for them
// ($select, Prefer: outlook.body-content-type="text"). It needs the application
// permission Mail.Read — scope it to the NDR mailbox with an application access
// policy (New-ApplicationAccessPolicy -AccessRight RestrictAccess).
package graphmail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/graph"
	"github.com/ndrbot/ndrbot/internal/lazyre"
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
	name   string
	client *graph.Client
	ep     graph.Endpoints
	o      Options
}

var _ watch.Source = (*Source)(nil)

var idRE = lazyre.New(`^[A-Za-z0-9=_+.@-]{1,512}$`)

// New builds the source for graph target t (configured as name). It reads the
// credential but does not contact Microsoft.
func New(name string, t config.Target, o Options) (*Source, error) {
	fail := func(format string, args ...any) (*Source, error) {
		return nil, fmt.Errorf("watch: graph target %q: "+format, append([]any{name}, args...)...)
	}
	if t.Kind != config.KindGraph {
		return fail("kind is %q, not graph", t.Kind)
	}
	if o.Folder == "" {
		o.Folder = "inbox"
	}
	if !idRE().MatchString(o.Mailbox) || !idRE().MatchString(o.Folder) {
		return fail("mailbox %q or folder %q is not a Graph id or principal name", o.Mailbox, o.Folder)
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
	var opts []graph.Option
	if o.Dial != nil {
		opts = append(opts, graph.WithDialer(o.Dial))
	}
	client, err := graph.NewClient(name, t, opts...)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return &Source{name: name, client: client, ep: client.Endpoints(), o: o}, nil
}

// Key names the watch in the store: mailbox and folder, lower case.
func (s *Source) Key() string { return strings.ToLower(s.o.Mailbox + "/" + s.o.Folder) }

// ErrResync is Graph's answer to a delta link it no longer knows (410 Gone,
// SyncStateNotFound): Delta starts a new sync by itself.
var ErrResync = errors.New("delta sync state expired")

// Delta implements watch.Source. cursor is the @odata.deltaLink (or, when a round
// stopped at MaxPages or on an error, the @odata.nextLink) a previous call returned;
// "" starts a sync of the messages received since now-Backfill. On an error, the
// messages read before it and the link to continue from come back with it, so the
// watch keeps the progress.
func (s *Source) Delta(ctx context.Context, cursor string) ([]watch.Message, string, error) {
	adapter, err := s.client.Adapter()
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
	u, err := s.client.CheckLink(link)
	if err != nil {
		return nil, fmt.Errorf("graph delta: %w", err)
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
	blockRE = lazyre.New(`(?i)<(?:br\s*/?|/p|/div|/tr|/h[1-6]|/li|/table)\s*>`)
	cellRE  = lazyre.New(`(?i)</t[dh]\s*>`)
	dropRE  = lazyre.New(`(?is)<(script|style|head)\b.*?</(script|style|head)\s*>`)
	tagRE   = lazyre.New(`(?s)<[^>]*>`)
)

// htmlText turns an HTML body into lines of text, in case Graph ignored the
// text preference: blocks and rows end lines, cells are tab-separated.
func htmlText(s string) string {
	s = dropRE().ReplaceAllString(s, "")
	s = blockRE().ReplaceAllString(s, "\n")
	s = cellRE().ReplaceAllString(s, "\t")
	s = tagRE().ReplaceAllString(s, "")
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

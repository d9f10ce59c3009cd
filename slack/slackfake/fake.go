// Package slackfake is a small fake of Slack for tests, driven by the real
// slack-go client: the Web API methods ndrbot uses, a Socket Mode websocket, a
// response_url endpoint and the files upload v2 flow, as one httptest server.
//
// It records every Web API call, stores messages per channel with their thread and
// edit history, can answer 429 for a while (RateLimit), lets a test inject slash
// commands and button clicks over the websocket and wait for their acks, and can
// drop the websocket (Disconnect) to exercise reconnects.
//
//	fake := slackfake.New(slackfake.Options{})
//	defer fake.Close()
//	api := slack.New(fake.BotToken(), slack.OptionAPIURL(fake.APIURL()),
//		slack.OptionAppLevelToken(fake.AppToken()))
package slackfake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Options configure the fake; zero values take the defaults noted.
type Options struct {
	BotToken string // default "xoxb-fake-bot-token"
	AppToken string // default "xapp-fake-app-token"
	// Scopes is the X-OAuth-Scopes header of auth.test (default: ndrbot's manifest scopes).
	Scopes string
	// PingInterval is how often the websocket sends PING (default 1s).
	PingInterval time.Duration
	// ChannelInterval, when set, is Slack's per-channel limit on posting
	// (chat.postMessage and chat.update): "1 message per second per channel"
	// (api.slack.com/methods/chat.postMessage, Rate limiting). A call closer
	// than 90 % of it to the channel's previous accepted one gets 429 with
	// Retry-After: 1 (the 10 % absorbs the network's jitter).
	ChannelInterval time.Duration
}

// Call is one Web API call as the fake received it (the token is not kept).
type Call struct {
	Method string
	Params url.Values
	At     time.Time
}

// Message is a message as it is now; Edits holds its earlier versions.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // empty for a top-level message
	Text     string
	Blocks   json.RawMessage
	Posted   time.Time
	Edits    []Edit
}

// Edit is an earlier version of a message, replaced by chat.update at At.
type Edit struct {
	Text   string
	Blocks json.RawMessage
	At     time.Time
}

// Ephemeral is a chat.postEphemeral message.
type Ephemeral struct {
	Channel, User, Text string
	TS                  string
}

// Response is a message posted to a response_url.
type Response struct {
	URL             string
	ResponseType    string
	Text            string
	ReplaceOriginal bool
	Raw             json.RawMessage
}

// File is an uploaded file; Shared once files.completeUploadExternal ran.
type File struct {
	ID, Name, Title string
	Content         string
	Channel         string
	ThreadTS        string
	Shared          bool
}

type limit struct {
	n          int
	retryAfter time.Duration
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server
	wg   sync.WaitGroup // websocket pingers; Add only under mu while !closing

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every change
	calls       []Call
	messages    map[string][]*Message
	ephemerals  []Ephemeral
	responses   []Response
	files       []*File
	groups      map[string][]string
	limits      map[string]*limit
	lastPost    map[string]time.Time // channel → last accepted post or edit (ChannelInterval)
	throttled   int
	lastMicro   int64
	seq         int
	conns       map[*wsConn]struct{}
	opened      int
	newestFirst bool
	envelopes   map[string]*envelope
	closing     bool // Close has begun: no new websocket is served
}

// New starts a fake Slack. Close it when done.
func New(opts Options) *Server {
	if opts.BotToken == "" {
		opts.BotToken = "xoxb-fake-bot-token"
	}
	if opts.AppToken == "" {
		opts.AppToken = "xapp-fake-app-token"
	}
	if opts.Scopes == "" {
		opts.Scopes = "commands,chat:write,chat:write.public,files:write,usergroups:read,channels:read,groups:read,users:read"
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = time.Second
	}
	s := &Server{
		opts:      opts,
		changed:   make(chan struct{}),
		messages:  map[string][]*Message{},
		groups:    map[string][]string{},
		limits:    map[string]*limit{},
		lastPost:  map[string]time.Time{},
		conns:     map[*wsConn]struct{}{},
		envelopes: map[string]*envelope{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("/link/", s.serveSocket)
	mux.HandleFunc("/upload/{id}", s.serveUpload)
	mux.HandleFunc("/response/{id}", s.serveResponse)
	s.srv = httptest.NewServer(mux)
	return s
}

// Close drops every websocket and stops the server.
func (s *Server) Close() {
	// A websocket opening now must not add a pinger while Wait runs.
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.Disconnect()
	s.wg.Wait()
	s.srv.Close()
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// APIURL is the Web API base for slack.OptionAPIURL (ends with "/").
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// BotToken is the bot token the fake accepts.
func (s *Server) BotToken() string { return s.opts.BotToken }

// AppToken is the app-level token the fake accepts for apps.connections.open.
func (s *Server) AppToken() string { return s.opts.AppToken }

// notify wakes every waiter; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitFor waits until cond holds, re-checking after every change the fake sees
// (a call, a message, an ack, a connection). cond may call the Server's methods.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slackfake: condition not met: %w", ctx.Err())
		}
	}
}

// nextTS returns a message ts, unique and increasing even within one second.
func (s *Server) nextTS() string {
	micro := max(time.Now().UnixMicro(), s.lastMicro+1)
	s.lastMicro = micro
	return fmt.Sprintf("%d.%06d", micro/1e6, micro%1e6)
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%06d", prefix, s.seq)
}

// RateLimit makes the next n calls of method fail with HTTP 429 and, when
// retryAfter > 0, a Retry-After header of that many whole seconds.
func (s *Server) RateLimit(method string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits[method] = &limit{n: n, retryAfter: retryAfter}
}

// Throttled counts the calls refused for ChannelInterval.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// SetUserGroup sets the members usergroups.users.list returns for id.
func (s *Server) SetUserGroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = slices.Clone(members)
}

// Calls returns the recorded Web API calls, all or only those of methods.
func (s *Server) Calls(methods ...string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if len(methods) == 0 || slices.Contains(methods, c.Method) {
			out = append(out, Call{Method: c.Method, Params: cloneValues(c.Params), At: c.At})
		}
	}
	return out
}

// Messages returns channel's messages (top-level and replies) in posting order.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages[channel]))
	for _, m := range s.messages[channel] {
		out = append(out, m.clone())
	}
	return out
}

// Thread returns the root message ts of channel and its replies, in order.
func (s *Server) Thread(channel, ts string) []Message {
	var out []Message
	for _, m := range s.Messages(channel) {
		if m.TS == ts || m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// Message returns one message.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.find(channel, ts); m != nil {
		return m.clone(), true
	}
	return Message{}, false
}

// Ephemerals returns the chat.postEphemeral messages.
func (s *Server) Ephemerals() []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ephemerals)
}

// Responses returns what was posted to response_urls.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// Files returns the uploaded files.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.files))
	for _, f := range s.files {
		out = append(out, *f)
	}
	return out
}

func (s *Server) find(channel, ts string) *Message {
	for _, m := range s.messages[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

func (m *Message) clone() Message {
	c := *m
	c.Edits = slices.Clone(m.Edits)
	return c
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = slices.Clone(vs)
	}
	return c
}

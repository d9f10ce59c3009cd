package slackfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// errNoConnection is returned when an injection finds no open websocket.
var errNoConnection = errors.New("slackfake: no Socket Mode connection")

type wsConn struct {
	n    int // opening order, 1 for the first connection
	c    *websocket.Conn
	wmu  sync.Mutex // gorilla allows one concurrent writer
	done chan struct{}
}

func (w *wsConn) writeJSON(v any) error { return w.writeStamped(v, nil) }

// writeStamped writes v; stamp (if any) runs just before, holding the write lock,
// so a latency measured from it excludes waiting for other writers.
func (w *wsConn) writeStamped(v any, stamp func()) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if stamp != nil {
		stamp()
	}
	return w.c.WriteJSON(v)
}

// Ack is a Socket Mode acknowledgement as the fake received it.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage
	Sent       time.Time     // when the envelope went out
	Latency    time.Duration // from sending the envelope to receiving its ack
}

type envelope struct {
	sent time.Time
	done chan struct{}
	ack  Ack
}

// serveSocket is the Socket Mode websocket: hello, PINGs, and reading acks.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn := &wsConn{c: c, done: make(chan struct{})}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	s.wg.Add(1) // the pinger, started once hello is written
	pinger := true
	defer func() {
		if pinger {
			s.wg.Done()
		}
	}()
	s.conns[conn] = struct{}{}
	s.opened++
	conn.n = s.opened
	n := len(s.conns)
	s.notify()
	s.mu.Unlock()

	defer func() {
		close(conn.done)
		_ = c.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.notify()
		s.mu.Unlock()
	}()

	if err := conn.writeJSON(map[string]any{
		"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "slackfake", "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": "A0FAKE"},
	}); err != nil {
		return
	}
	pinger = false
	go func() {
		defer s.wg.Done()
		s.ping(conn)
	}()

	for {
		var msg struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := c.ReadJSON(&msg); err != nil {
			return
		}
		s.mu.Lock()
		if env, ok := s.envelopes[msg.EnvelopeID]; ok && env.ack.EnvelopeID == "" {
			now := time.Now()
			env.ack = Ack{EnvelopeID: msg.EnvelopeID, Payload: msg.Payload, Sent: env.sent, Latency: now.Sub(env.sent)}
			close(env.done)
			s.notify()
		}
		s.mu.Unlock()
	}
}

func (s *Server) ping(conn *wsConn) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-conn.done:
			return
		case <-t.C:
			if err := conn.c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
				return
			}
		}
	}
}

// Disconnect drops every websocket without a close handshake, as a network
// failure would; the client has to notice and reconnect.
func (s *Server) Disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.c.Close()
	}
}

// RequestReconnect sends Slack's {"type":"disconnect"} on every websocket: the
// polite way Slack asks a client to reconnect.
func (s *Server) RequestReconnect() {
	for _, c := range s.openConns() {
		_ = c.writeJSON(map[string]any{"type": "disconnect", "reason": "refresh_requested",
			"debug_info": map[string]any{"host": "slackfake"}})
	}
}

// Connections is the number of open websockets.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// WaitConnections waits until total websockets have been opened since the start
// (1: the first connection; 2: one reconnect …) and one is open.
func (s *Server) WaitConnections(ctx context.Context, total int) error {
	return s.WaitFor(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.opened >= total && len(s.conns) > 0
	})
}

func (s *Server) openConns() []*wsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	// Oldest first, or newest first: Slack picks a connection of the app for each
	// envelope, and tests of several replicas need to choose which one gets it.
	sort.Slice(out, func(i, j int) bool { return (out[i].n < out[j].n) != s.newestFirst })
	return out
}

// SendToNewest makes envelopes go to the most recently opened connection (another
// replica) instead of the oldest.
func (s *Server) SendToNewest(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newestFirst = on
}

// send delivers one envelope on an open websocket, waiting for one if needed.
func (s *Server) send(ctx context.Context, typ string, payload any, acceptsResponse bool) (string, error) {
	if err := s.WaitFor(ctx, func() bool { return s.Connections() > 0 }); err != nil {
		return "", fmt.Errorf("%w: %w", errNoConnection, err)
	}
	s.mu.Lock()
	id := s.nextID("env-")
	env := &envelope{done: make(chan struct{})}
	s.envelopes[id] = env
	s.mu.Unlock()

	msg := map[string]any{"envelope_id": id, "type": typ, "payload": payload,
		"accepts_response_payload": acceptsResponse, "retry_attempt": 0, "retry_reason": ""}
	stamp := func() {
		s.mu.Lock()
		env.sent = time.Now()
		s.mu.Unlock()
	}
	for _, c := range s.openConns() {
		if err := c.writeStamped(msg, stamp); err == nil {
			return id, nil
		}
	}
	return "", errNoConnection
}

// SlashCommand sends a slash_commands envelope and returns its envelope id.
func (s *Server) SlashCommand(ctx context.Context, cmd SlashCommand) (string, error) {
	return s.send(ctx, "slash_commands", s.slashPayload(cmd), true)
}

// Click sends an interactive (block_actions) envelope and returns its envelope id.
func (s *Server) Click(ctx context.Context, click Click) (string, error) {
	return s.send(ctx, "interactive", s.clickPayload(click), false)
}

// WaitAck waits for the ack of an envelope.
func (s *Server) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	s.mu.Lock()
	env, ok := s.envelopes[envelopeID]
	s.mu.Unlock()
	if !ok {
		return Ack{}, fmt.Errorf("slackfake: unknown envelope %q", envelopeID)
	}
	select {
	case <-env.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return env.ack, nil
	case <-ctx.Done():
		return Ack{}, fmt.Errorf("slackfake: no ack for %s: %w", envelopeID, ctx.Err())
	}
}

// Acked reports whether the envelope has been acknowledged.
func (s *Server) Acked(envelopeID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	env, ok := s.envelopes[envelopeID]
	return ok && env.ack.EnvelopeID != ""
}

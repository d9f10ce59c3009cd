package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

type apiResponse map[string]any

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(code string) apiResponse { return apiResponse{"ok": false, "error": code} }

// params reads a call's arguments the way slack-go sends them: form bodies, JSON
// bodies (non-string JSON values are kept as their JSON text) or a query string.
func params(r *http.Request) (url.Values, string, error) {
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	v := url.Values{}
	switch {
	case ctype == "application/json":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, "", err
		}
		if len(strings.TrimSpace(string(body))) > 0 && string(body) != "null" {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, "", err
			}
			for k, raw := range m {
				var str string
				if json.Unmarshal(raw, &str) == nil {
					v.Set(k, str)
				} else {
					v.Set(k, string(raw))
				}
			}
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, "", err
		}
		v = r.Form
	}
	if t := v.Get("token"); t != "" {
		token = t
	}
	v.Del("token")
	return v, token, nil
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	p, token, err := params(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: method, Params: p, At: time.Now()})
	defer s.notify()

	if l := s.limits[method]; l != nil && l.n > 0 {
		l.n--
		if l.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(l.retryAfter.Round(time.Second)/time.Second)))
		}
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
		return
	}

	if s.opts.ChannelInterval > 0 && (method == "chat.postMessage" || method == "chat.update") {
		ch, now := p.Get("channel"), time.Now()
		if last, ok := s.lastPost[ch]; ok && now.Sub(last) < s.opts.ChannelInterval*9/10 {
			s.throttled++
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
			return
		}
		s.lastPost[ch] = now
	}

	want := s.opts.BotToken
	if method == "apps.connections.open" {
		want = s.opts.AppToken
		if token == s.opts.BotToken {
			writeJSON(w, fail("not_allowed_token_type"))
			return
		}
	}
	if token == "" {
		writeJSON(w, fail("not_authed"))
		return
	}
	if token != want {
		writeJSON(w, fail("invalid_auth"))
		return
	}

	switch method {
	case "auth.test":
		w.Header().Set("X-OAuth-Scopes", s.opts.Scopes)
		writeJSON(w, apiResponse{"ok": true, "url": "https://fake.slack.test/", "team": "Fake Team",
			"user": "ndrbot", "team_id": "T0FAKE", "user_id": "U0BOT", "bot_id": "B0BOT"})
	case "apps.connections.open":
		s.seq++
		writeJSON(w, apiResponse{"ok": true, "url": fmt.Sprintf("ws://%s/link/?ticket=%d", r.Host, s.seq)})
	case "chat.postMessage":
		writeJSON(w, s.postMessage(p))
	case "chat.update":
		writeJSON(w, s.update(p))
	case "chat.postEphemeral":
		if p.Get("channel") == "" || p.Get("user") == "" {
			writeJSON(w, fail("channel_not_found"))
			return
		}
		ts := s.nextTS()
		s.ephemerals = append(s.ephemerals, Ephemeral{Channel: p.Get("channel"), User: p.Get("user"), Text: p.Get("text"), TS: ts})
		writeJSON(w, apiResponse{"ok": true, "message_ts": ts})
	case "chat.getPermalink":
		ch, ts := p.Get("channel"), p.Get("message_ts")
		if s.find(ch, ts) == nil {
			writeJSON(w, fail("message_not_found"))
			return
		}
		writeJSON(w, apiResponse{"ok": true, "channel": ch,
			"permalink": "https://fake.slack.test/archives/" + ch + "/p" + strings.ReplaceAll(ts, ".", "")})
	case "files.getUploadURLExternal":
		writeJSON(w, s.uploadURL(r, p))
	case "files.completeUploadExternal":
		writeJSON(w, s.completeUpload(p))
	case "usergroups.users.list":
		members, ok := s.groups[p.Get("usergroup")]
		if !ok {
			writeJSON(w, fail("no_such_subteam"))
			return
		}
		writeJSON(w, apiResponse{"ok": true, "users": members})
	default:
		writeJSON(w, fail("unknown_method"))
	}
}

func (s *Server) postMessage(p url.Values) apiResponse {
	ch := p.Get("channel")
	if ch == "" {
		return fail("channel_not_found")
	}
	if p.Get("text") == "" && p.Get("blocks") == "" {
		return fail("no_text")
	}
	if err := checkMessage(p); err != "" {
		return fail(err)
	}
	thread := p.Get("thread_ts")
	if thread != "" && s.find(ch, thread) == nil {
		return fail("thread_not_found")
	}
	m := &Message{Channel: ch, TS: s.nextTS(), ThreadTS: thread, Text: p.Get("text"),
		Blocks: rawBlocks(p.Get("blocks")), Posted: time.Now()}
	s.messages[ch] = append(s.messages[ch], m)
	return apiResponse{"ok": true, "channel": ch, "ts": m.TS,
		"message": apiResponse{"type": "message", "text": m.Text, "ts": m.TS, "thread_ts": m.ThreadTS}}
}

func (s *Server) update(p url.Values) apiResponse {
	ch, ts := p.Get("channel"), p.Get("ts")
	m := s.find(ch, ts)
	if m == nil {
		return fail("message_not_found")
	}
	if err := checkMessage(p); err != "" {
		return fail(err)
	}
	m.Edits = append(m.Edits, Edit{Text: m.Text, Blocks: m.Blocks, At: time.Now()})
	m.Text = p.Get("text")
	if b := p.Get("blocks"); b != "" {
		m.Blocks = rawBlocks(b)
	}
	return apiResponse{"ok": true, "channel": ch, "ts": ts, "text": m.Text}
}

func rawBlocks(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func (s *Server) uploadURL(r *http.Request, p url.Values) apiResponse {
	name := p.Get("filename")
	n, err := strconv.Atoi(p.Get("length"))
	if name == "" || err != nil || n <= 0 {
		return fail("invalid_arguments")
	}
	f := &File{ID: s.nextID("F"), Name: name}
	s.files = append(s.files, f)
	return apiResponse{"ok": true, "file_id": f.ID, "upload_url": "http://" + r.Host + "/upload/" + f.ID}
}

func (s *Server) completeUpload(p url.Values) apiResponse {
	var refs []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(p.Get("files")), &refs); err != nil || len(refs) == 0 {
		return fail("invalid_arguments")
	}
	ch := p.Get("channel_id")
	thread := p.Get("thread_ts")
	if thread != "" && s.find(ch, thread) == nil {
		return fail("thread_not_found")
	}
	var out []apiResponse
	for _, ref := range refs {
		f := s.file(ref.ID)
		if f == nil || f.Content == "" {
			return fail("file_not_found")
		}
		f.Title, f.Channel, f.ThreadTS, f.Shared = ref.Title, ch, thread, ch != ""
		out = append(out, apiResponse{"id": f.ID, "title": f.Title})
	}
	return apiResponse{"ok": true, "files": out}
}

func (s *Server) file(id string) *File {
	for _, f := range s.files {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// serveUpload receives the bytes of a files upload v2 (multipart field "file").
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	part, _, err := r.FormFile("file")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer part.Close()
	body, err := io.ReadAll(part)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{Method: "upload", Params: url.Values{"file_id": {id}, "length": {strconv.Itoa(len(body))}}, At: time.Now()})
	defer s.notify()
	f := s.file(id)
	if f == nil {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	f.Content = string(body)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "OK - %d", len(body))
}

// serveResponse receives a message posted to a response_url.
func (s *Server) serveResponse(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg struct {
		Text            string `json:"text"`
		ResponseType    string `json:"response_type"`
		ReplaceOriginal bool   `json:"replace_original"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.responses = append(s.responses, Response{URL: r.URL.String(), ResponseType: msg.ResponseType,
		Text: msg.Text, ReplaceOriginal: msg.ReplaceOriginal, Raw: body})
	s.notify()
	s.mu.Unlock()
	writeJSON(w, apiResponse{"ok": true})
}

// checkMessage enforces the Block Kit limits Slack enforces (invalid_blocks) and
// the message length limit (msg_too_long).
func checkMessage(p url.Values) string {
	if len([]rune(p.Get("text"))) > 40000 {
		return "msg_too_long"
	}
	raw := p.Get("blocks")
	if raw == "" {
		return ""
	}
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	var blocks []struct {
		Type     string            `json:"type"`
		Text     *text             `json:"text"`
		Fields   []text            `json:"fields"`
		Elements []json.RawMessage `json:"elements"`
	}
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return "invalid_blocks_format"
	}
	if len(blocks) > 50 {
		return "invalid_blocks"
	}
	long := func(t *text, n int) bool { return t != nil && (len([]rune(t.Text)) > n || t.Text == "") }
	for _, b := range blocks {
		switch b.Type {
		case "header":
			if long(b.Text, 150) || (b.Text != nil && b.Text.Type != "plain_text") {
				return "invalid_blocks"
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 || long(b.Text, 3000) || len(b.Fields) > 10 {
				return "invalid_blocks"
			}
			for _, f := range b.Fields {
				if long(&f, 2000) {
					return "invalid_blocks"
				}
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				return "invalid_blocks"
			}
		case "actions":
			if len(b.Elements) == 0 || len(b.Elements) > 25 {
				return "invalid_blocks"
			}
		}
	}
	return ""
}

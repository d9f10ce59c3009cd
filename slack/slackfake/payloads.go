package slackfake

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SlashCommand is what a user typed; the fake fills in the rest of Slack's payload.
type SlashCommand struct {
	UserID, UserName       string
	ChannelID, ChannelName string
	Command                string // default "/ndr"
	Text                   string
}

// Click is a button press on a message; the fake fills in the rest of the payload
// (and the message's blocks, when the message is stored).
type Click struct {
	UserID, UserName       string
	ChannelID, ChannelName string
	MessageTS              string
	ActionID, Value        string
	BlockID                string
}

func (s *Server) responseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.URL + "/response/" + s.nextID("R")
}

// slashPayload is a slash command shaped like Slack's (Socket Mode payload or
// HTTP form fields).
func (s *Server) slashPayload(c SlashCommand) map[string]string {
	if c.Command == "" {
		c.Command = "/ndr"
	}
	return map[string]string{
		"token": "deprecated-verification-token", "team_id": "T0FAKE", "team_domain": "fake",
		"channel_id": c.ChannelID, "channel_name": c.ChannelName,
		"user_id": c.UserID, "user_name": c.UserName,
		"command": c.Command, "text": c.Text,
		"api_app_id": "A0FAKE", "is_enterprise_install": "false",
		"response_url": s.responseURL(), "trigger_id": "1337.42.trigger",
	}
}

// clickPayload is a block_actions interaction shaped like Slack's.
func (s *Server) clickPayload(c Click) map[string]any {
	msg := map[string]any{"type": "message", "ts": c.MessageTS, "user": "U0BOT", "bot_id": "B0BOT"}
	if m, ok := s.Message(c.ChannelID, c.MessageTS); ok {
		msg["text"] = m.Text
		if m.Blocks != nil {
			msg["blocks"] = m.Blocks
		}
		if m.ThreadTS != "" {
			msg["thread_ts"] = m.ThreadTS
		}
	}
	return map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": c.UserID, "username": c.UserName, "name": c.UserName, "team_id": "T0FAKE"},
		"api_app_id": "A0FAKE", "token": "deprecated-verification-token",
		"container":    map[string]any{"type": "message", "message_ts": c.MessageTS, "channel_id": c.ChannelID, "is_ephemeral": false},
		"trigger_id":   "1337.43.trigger",
		"team":         map[string]any{"id": "T0FAKE", "domain": "fake"},
		"channel":      map[string]any{"id": c.ChannelID, "name": c.ChannelName},
		"message":      msg,
		"state":        map[string]any{"values": map[string]any{}},
		"response_url": s.responseURL(),
		"actions": []map[string]any{{
			"action_id": c.ActionID, "block_id": c.BlockID, "value": c.Value, "type": "button",
			"text":      map[string]any{"type": "plain_text", "text": c.ActionID, "emoji": true},
			"action_ts": strconv.FormatInt(time.Now().UnixMicro(), 10),
		}},
	}
}

// SlashCommandForm is the form body Slack posts to a slash command Request URL.
func (s *Server) SlashCommandForm(c SlashCommand) url.Values {
	v := url.Values{}
	for k, val := range s.slashPayload(c) {
		v.Set(k, val)
	}
	return v
}

// ClickForm is the form body Slack posts to the Interactivity Request URL.
func (s *Server) ClickForm(c Click) (url.Values, error) {
	p, err := json.Marshal(s.clickPayload(c))
	if err != nil {
		return nil, err
	}
	return url.Values{"payload": {string(p)}}, nil
}

// Sign returns Slack's request signing headers for body, sent at the given time.
func Sign(secret string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:", ts)
	mac.Write(body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

// SignedRequest builds a form POST to target signed with secret at the given time,
// as Slack sends slash commands and interactions in HTTP mode.
func SignedRequest(ctx context.Context, target, secret string, at time.Time, form url.Values) (*http.Request, error) {
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range Sign(secret, at, []byte(body)) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

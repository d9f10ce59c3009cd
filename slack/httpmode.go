package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
)

// HTTPHandler serves Slack's request URLs: point the slash command, Interactivity
// and (optionally) Event Subscriptions at it — one handler for all three, any path.
// Every request is verified with the signing secret (timestamp within 5 minutes,
// HMAC of the body) before it is parsed; a bad one gets 401 and reaches nothing,
// and so does a replay of a good one (Options.Replay; 503 when that check cannot
// answer). A body over Options.MaxBodyBytes gets 413. A request from another
// workspace or app than Options.TeamID and Options.AppID gets 403. A good one is
// answered 200 with an empty body at once and queued for the workers. The queue
// runs only while Run runs (it may be started with Listen "").
func (a *Adapter) HTTPHandler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

func (a *Adapter) runHTTP(ctx context.Context) error {
	if a.opts.Listen == "" {
		a.connected.Store(true)
		defer a.connected.Store(false)
		<-ctx.Done() // the caller serves HTTPHandler itself
		return nil
	}
	ln, err := net.Listen("tcp", a.opts.Listen)
	if err != nil {
		return fmt.Errorf("slack.listen %q: %w", a.opts.Listen, err)
	}
	srv := &http.Server{
		Handler:           a.HTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	wg.Go(func() { errc <- srv.Serve(ln) })
	a.log.Info("slack http mode listening", "addr", ln.Addr().String())
	a.connected.Store(true)
	defer a.connected.Store(false)

	select {
	case err := <-errc:
		return fmt.Errorf("slack http mode: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("slack http mode shutdown: %w", err)
	}
	return nil
}

func (a *Adapter) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, status, err := a.verified(w, r)
	if err != nil {
		a.log.Warn("slack request refused", "status", status, "remote", r.RemoteAddr, "err", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	if !a.checkReplay(w, r) {
		return
	}

	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype == "application/json" {
		a.serveEvent(w, r, body)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var jobs []job
	var from origin
	switch {
	case form.Get("payload") != "":
		var cb slackgo.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		enterprise := cb.Enterprise.ID
		if enterprise == "" {
			enterprise = cb.Team.EnterpriseID
		}
		from = origin{team: cb.Team.ID, enterprise: enterprise, app: cb.APIAppID}
		jobs = clickJobs(cb)
	case form.Get("command") != "":
		cmd := slashCommand(form)
		from = origin{team: cmd.TeamID, enterprise: cmd.EnterpriseID, app: cmd.APIAppID}
		jobs = []job{commandJob(cmd)}
	default:
		http.Error(w, "neither a slash command nor an interaction", http.StatusBadRequest)
		return
	}
	if !a.checkOrigin(w, r, from) {
		return
	}
	if a.pool.isClosed() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	// Ack first, then queue: the 200 is flushed before the queue can push back.
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	for _, j := range jobs {
		a.enqueue(j)
	}
}

// verified reads the body (size-limited) through Slack's signature verifier and
// returns it only when the signature and timestamp hold.
func (a *Adapter) verified(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	sv, err := slackgo.NewSecretsVerifier(r.Header, a.opts.SigningSecret)
	if err != nil {
		return nil, http.StatusUnauthorized, fmt.Errorf("signature headers: %w", err)
	}
	var buf bytes.Buffer
	_, err = io.Copy(io.MultiWriter(&buf, &sv), http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, err
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %w", err)
	}
	if err := sv.Ensure(); err != nil {
		return nil, http.StatusUnauthorized, err
	}
	return buf.Bytes(), http.StatusOK, nil
}

// serveEvent answers the Events API: the url_verification handshake when the
// Request URL is saved (it names no team), 200 for anything else from our team and
// app (ndrbot subscribes to no events).
func (a *Adapter) serveEvent(w http.ResponseWriter, r *http.Request, body []byte) {
	var ev struct {
		Type         string `json:"type"`
		Challenge    string `json:"challenge"`
		TeamID       string `json:"team_id"`
		EnterpriseID string `json:"enterprise_id"`
		APIAppID     string `json:"api_app_id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if ev.Type == "url_verification" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, ev.Challenge)
		return
	}
	if !a.checkOrigin(w, r, origin{team: ev.TeamID, enterprise: ev.EnterpriseID, app: ev.APIAppID}) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

// origin is who a request says it comes from: workspace, Enterprise Grid
// organisation (may be empty) and app.
type origin struct{ team, enterprise, app string }

// checkOrigin refuses with 403 a signed request from another workspace or app
// than the configured ones (the signing secret proves only that Slack sent it
// for our app; a distributed app is also installed elsewhere). It writes the
// refusal and returns false.
func (a *Adapter) checkOrigin(w http.ResponseWriter, r *http.Request, from origin) bool {
	field, got, want := "", "", ""
	if team := *a.team.Load(); team != "" && team != from.team && team != from.enterprise {
		field, got, want = "team_id", from.team, team
	} else if a.opts.AppID != "" && a.opts.AppID != from.app {
		field, got, want = "api_app_id", from.app, a.opts.AppID
	}
	if field == "" {
		return true
	}
	a.log.Warn("slack request refused: "+field+" does not match the configuration", "status", http.StatusForbidden,
		"field", field, "got", got, "want", want, "enterprise_id", from.enterprise, "remote", r.RemoteAddr)
	http.Error(w, "request from another "+strings.TrimSuffix(strings.TrimPrefix(field, "api_"), "_id"), http.StatusForbidden)
	return false
}

func slashCommand(form url.Values) slackgo.SlashCommand {
	return slackgo.SlashCommand{
		TeamID:      form.Get("team_id"),
		ChannelID:   form.Get("channel_id"),
		ChannelName: form.Get("channel_name"),
		UserID:      form.Get("user_id"),
		UserName:    form.Get("user_name"),
		Command:     form.Get("command"),
		Text:        form.Get("text"),
		ResponseURL: form.Get("response_url"),
		TriggerID:   form.Get("trigger_id"),
		APIAppID:    form.Get("api_app_id"),
		// Enterprise Grid: the organisation of the workspace the command came from.
		EnterpriseID: form.Get("enterprise_id"),
	}
}

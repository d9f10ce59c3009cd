package slack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
	"golang.org/x/time/rate"
)

// Poster delivers rendered messages to Slack: posts, in-place edits, file uploads,
// permalinks, ephemeral replies and user-group lookups. Every post and edit waits
// for a per-channel rate limiter. It never retries: a 429 comes back as a
// *RateLimitError (a RetryAfterError) for the outbox to reschedule.
type Poster struct {
	api      *slackgo.Client
	apiURL   *url.URL
	log      *slog.Logger
	interval time.Duration
	burst    int
	groupTTL time.Duration
	now      func() time.Time
	onError  func(method string, rateLimited bool)

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	uploaded recent
	groups   map[string]groupEntry
}

type groupEntry struct {
	members []string
	at      time.Time
}

// NewPoster builds a Poster from the bot token, API URL, rate and logger of opts.
func NewPoster(opts Options) (*Poster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkBotTokenShape(opts.BotToken); err != nil {
		return nil, err
	}
	u, err := url.Parse(opts.APIURL)
	if err != nil {
		return nil, fmt.Errorf("slack.api_url: %w", err)
	}
	return &Poster{
		api:      opts.client(),
		apiURL:   u,
		log:      opts.Logger.With("component", "slack-poster"),
		interval: opts.PostInterval,
		burst:    opts.PostBurst,
		groupTTL: opts.GroupTTL,
		now:      time.Now,
		onError:  opts.OnAPIError,
		limiters: map[string]*rate.Limiter{},
		uploaded: recent{max: 4096, set: map[[32]byte]struct{}{}},
		groups:   map[string]groupEntry{},
	}, nil
}

// wait blocks until channel may receive another post or edit.
func (p *Poster) wait(ctx context.Context, channel string) error {
	p.mu.Lock()
	l, ok := p.limiters[channel]
	if !ok {
		l = rate.NewLimiter(rate.Every(p.interval), p.burst)
		p.limiters[channel] = l
	}
	p.mu.Unlock()
	if err := l.Wait(ctx); err != nil {
		return fmt.Errorf("slack rate limiter for %s: %w", channel, err)
	}
	return nil
}

// Deliver posts r to channel (as a reply in threadTS when set) or, when existingTS
// is set, edits that message in place; then uploads r.Files (files upload v2) into
// the thread — the message's own thread when it is a root. key names the message
// within its run (commands.KeyRoot, ApprovalKey…): a file already uploaded for the
// same channel, key, name and content is not uploaded again by this Poster.
//
// It returns the message's ts. On error, ts is non-empty only when the message
// itself exists (a file upload failed): retry with existingTS = ts, not as a new post.
func (p *Poster) Deliver(ctx context.Context, channel, threadTS, key, existingTS string, r Rendered) (string, error) {
	if channel == "" {
		return "", errors.New("slack deliver: empty channel")
	}
	if r.Text == "" && len(r.Blocks) == 0 {
		return "", errors.New("slack deliver: empty message")
	}
	if err := p.wait(ctx, channel); err != nil {
		return "", err
	}
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(r.Text, false)}
	if len(r.Blocks) > 0 {
		opts = append(opts, slackgo.MsgOptionBlocks(r.Blocks...))
	}
	ts := existingTS
	if existingTS == "" {
		opts = append(opts, slackgo.MsgOptionDisableLinkUnfurl(), slackgo.MsgOptionDisableMediaUnfurl())
		if threadTS != "" {
			opts = append(opts, slackgo.MsgOptionTS(threadTS))
		}
		_, posted, err := p.api.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			return "", p.apiError("chat.postMessage", err)
		}
		ts = posted
	} else {
		if _, _, _, err := p.api.UpdateMessageContext(ctx, channel, existingTS, opts...); err != nil {
			return "", p.apiError("chat.update", err)
		}
	}

	fileThread := threadTS
	if fileThread == "" {
		fileThread = ts
	}
	for _, f := range r.Files {
		if err := p.upload(ctx, channel, fileThread, key, f); err != nil {
			return ts, err
		}
	}
	return ts, nil
}

func (p *Poster) upload(ctx context.Context, channel, threadTS, key string, f File) error {
	if f.Content == "" {
		return nil
	}
	digest := sha256.Sum256([]byte(channel + "\x00" + threadTS + "\x00" + key + "\x00" + f.Name + "\x00" + f.Content))
	p.mu.Lock()
	done := p.uploaded.has(digest)
	p.mu.Unlock()
	if done {
		return nil
	}
	if err := p.wait(ctx, channel); err != nil {
		return err
	}
	title := f.Title
	if title == "" {
		title = f.Name
	}
	_, err := p.api.UploadFileContext(ctx, slackgo.UploadFileParameters{
		Filename:        f.Name,
		Title:           title,
		Content:         f.Content,
		FileSize:        len(f.Content),
		SnippetType:     "text",
		Channel:         channel,
		ThreadTimestamp: threadTS,
	})
	if err != nil {
		return p.apiError("files upload v2 ("+f.Name+")", err)
	}
	p.mu.Lock()
	p.uploaded.add(digest)
	p.mu.Unlock()
	return nil
}

// Alarm posts text into a thread at once, bypassing the outbox: for when the
// store (which holds the outbox) refuses writes.
func (p *Poster) Alarm(ctx context.Context, channel, threadTS, text string) error {
	_, err := p.Deliver(ctx, channel, threadTS, "alarm", "", Rendered{Text: text})
	return err
}

// Permalink returns a link to the message (chat.getPermalink), e.g. the thread
// root for the escalation channel.
func (p *Poster) Permalink(ctx context.Context, channel, ts string) (string, error) {
	link, err := p.api.GetPermalinkContext(ctx, &slackgo.PermalinkParameters{Channel: channel, Ts: ts})
	return link, p.apiError("chat.getPermalink", err)
}

// Ephemeral shows text to one user in channel (chat.postEphemeral). text is plain
// text: it is escaped for mrkdwn.
func (p *Poster) Ephemeral(ctx context.Context, channel, user, text string) error {
	if err := p.wait(ctx, channel); err != nil {
		return err
	}
	_, err := p.api.PostEphemeralContext(ctx, channel, user, slackgo.MsgOptionText(escape(text), false))
	return p.apiError("chat.postEphemeral", err)
}

// Respond shows text only to the user who typed a command or clicked a button:
// through the request's response_url when there is one (it works in channels the
// bot is not in, valid 30 minutes, does not count against the post rate), else —
// or when that fails — through chat.postEphemeral. text is plain text.
func (p *Poster) Respond(ctx context.Context, responseURL, channel, user, text string) error {
	if responseURL != "" && p.trustedResponseURL(responseURL) {
		_, _, err := p.api.PostMessageContext(ctx, channel,
			slackgo.MsgOptionResponseURL(responseURL, slackgo.ResponseTypeEphemeral),
			slackgo.MsgOptionText(escape(text), false))
		if err == nil {
			return nil
		}
		p.log.Warn("response_url failed; falling back to chat.postEphemeral", "channel", channel, "err", err)
	}
	return p.Ephemeral(ctx, channel, user, text)
}

// trustedResponseURL accepts https URLs (hooks.slack.com, GovSlack …) and, for
// proxies and tests, URLs on the API URL's own origin.
func (p *Poster) trustedResponseURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return u.Scheme == "https" || (u.Scheme == p.apiURL.Scheme && u.Host == p.apiURL.Host)
}

// GroupMembers lists the user IDs of a user group (usergroups.users.list), cached
// for Options.GroupTTL: good enough to show who may act, never to decide.
func (p *Poster) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	p.mu.Lock()
	e, ok := p.groups[groupID]
	p.mu.Unlock()
	if ok && p.now().Sub(e.at) < p.groupTTL {
		return slices.Clone(e.members), nil
	}
	return p.GroupMembersNow(ctx, groupID)
}

// IsGroup reports whether id names a user group: Slack's user group ids start
// with S (api.slack.com/types/usergroup; users start with U or W).
func (p *Poster) IsGroup(id string) bool { return strings.HasPrefix(id, "S") }

// GroupMembersNow asks Slack for a user group's members now, and refreshes the
// cache with the answer: an approval is decided on who is in the group at the
// click, not five minutes earlier.
func (p *Poster) GroupMembersNow(ctx context.Context, groupID string) ([]string, error) {
	members, err := p.api.GetUserGroupMembersContext(ctx, groupID)
	if err != nil {
		return nil, p.apiError("usergroups.users.list", err)
	}
	p.mu.Lock()
	p.groups[groupID] = groupEntry{members: slices.Clone(members), at: p.now()}
	p.mu.Unlock()
	return members, nil
}

// recent is a bounded set that forgets its oldest entries first.
type recent struct {
	max   int
	set   map[[32]byte]struct{}
	order [][32]byte
}

func (r *recent) has(k [32]byte) bool { _, ok := r.set[k]; return ok }

func (r *recent) add(k [32]byte) {
	if r.has(k) {
		return
	}
	if len(r.order) >= r.max {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
	r.set[k] = struct{}{}
	r.order = append(r.order, k)
}

// apiError is the package's apiError, told to OnAPIError first.
func (p *Poster) apiError(method string, err error) error {
	err = apiError(method, err)
	if err != nil && p.onError != nil {
		var rl *RateLimitError
		p.onError(method, errors.As(err, &rl))
	}
	return err
}

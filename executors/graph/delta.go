package graph

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// MissedMessage is a message received while no notification could arrive. Ids and
// times only: no subject, sender or body leaves the mailbox.
type MissedMessage struct {
	ID               string `json:"Id"`
	ReceivedDateTime string `json:"ReceivedDateTime"`
}

// Reconciliation is the result of a delta query over a lapse.
type Reconciliation struct {
	Mailbox string `json:"Mailbox"`
	// Folder is the folder reconciled by delta query; "" when Scope is mailbox.
	Folder string `json:"Folder"`
	// Scope is folder (one folder, by delta query) or mailbox (every folder of the
	// mailbox, as a users/{id}/messages subscription watches them, by listing).
	Scope       string          `json:"Scope"`
	Since       string          `json:"Since"`
	Until       string          `json:"Until"`
	MissedCount int             `json:"MissedCount"`
	Missed      []MissedMessage `json:"Missed"`
	// Truncated: more than MaxMissed messages; MissedCount counts them all.
	Truncated bool `json:"Truncated"`
	// DeltaLink continues the sync from here: the next delta query with it returns
	// only what changed after this one.
	DeltaLink string `json:"DeltaLink"`
	Pages     int    `json:"Pages"`
	Note      string `json:"Note,omitempty"`
}

// MaxMissed caps the messages listed in a Reconciliation.
const MaxMissed = 5000

// deltaPageSize is the Prefer: odata.maxpagesize of delta requests.
const deltaPageSize = 100

// deltaReconcile lists the messages a folder received in a window, by delta query.
//
// Params: mailbox (required: user id or UPN), folder (default inbox), since (RFC
// 3339, required unless delta_link), until (default now), delta_link (continue a
// stored sync instead of starting one).
func (e *Executor) deltaReconcile(ctx context.Context, s *session, p map[string]any) (Reconciliation, error) {
	mailbox, ok, err := idParam(p, "mailbox")
	if err != nil {
		return Reconciliation{}, err
	}
	if !ok {
		return Reconciliation{}, invalid("parameter %q is required (user id or principal name)", "mailbox")
	}
	folder, hasFolder, err := idParam(p, "folder")
	if err != nil {
		return Reconciliation{}, err
	}
	allFolders, err := executors.BoolParam(p, "all_folders", false)
	if err != nil {
		return Reconciliation{}, err
	}
	switch {
	case allFolders && hasFolder:
		return Reconciliation{}, invalid("parameters %q and %q exclude each other", "folder", "all_folders")
	case !allFolders && !hasFolder:
		folder = "inbox"
	}
	since, hasSince, err := timeParam(p, "since")
	if err != nil {
		return Reconciliation{}, err
	}
	until, hasUntil, err := timeParam(p, "until")
	if err != nil {
		return Reconciliation{}, err
	}
	if !hasUntil {
		until = e.now()
	}
	link, _, err := stringParam(p, "delta_link")
	if err != nil {
		return Reconciliation{}, err
	}
	if link != "" && allFolders {
		return Reconciliation{}, invalid("parameter %q: delta query works per folder, not over %q", "delta_link", "all_folders")
	}
	if link != "" {
		if _, err := e.checkLink(link); err != nil {
			return Reconciliation{}, invalid("parameter %q: %v", "delta_link", err)
		}
	} else if !hasSince {
		return Reconciliation{}, invalid("parameter %q is required without delta_link", "since")
	}
	if hasSince && !since.Before(until) {
		return Reconciliation{}, invalid("since %s is not before until %s", rfc3339(since), rfc3339(until))
	}
	return e.reconcile(ctx, s, mailbox, folder, since, until, link)
}

// reconcile runs the delta query: from link when given, otherwise a fresh one
// filtered on receivedDateTime ge since (the one filter Graph's message delta
// supports). It follows @odata.nextLink to the @odata.deltaLink and keeps the
// messages received in [since, until): those after until were notified by the new
// subscription.
//
// An empty folder reconciles the whole mailbox instead (reconcileMailbox).
func (e *Executor) reconcile(ctx context.Context, s *session, mailbox, folder string, since, until time.Time, link string) (Reconciliation, error) {
	if folder == "" {
		return e.reconcileMailbox(ctx, s, mailbox, since, until)
	}
	rec := Reconciliation{Mailbox: mailbox, Folder: folder, Scope: "folder", Since: rfc3339(since), Until: rfc3339(until), Missed: []MissedMessage{}}
	b := users.NewUsersRequestBuilderInternal(map[string]string{}, s.adapter).
		ByUserId(mailbox).MailFolders().ByMailFolderId(folder).Messages().Delta()
	var cfg *users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration
	headers := abs.NewRequestHeaders()
	headers.Add("Prefer", "odata.maxpagesize="+strconv.Itoa(deltaPageSize))
	if link != "" {
		b = b.WithUrl(link)
		cfg = &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: headers}
	} else {
		filter := "receivedDateTime ge " + graphTime(since)
		cfg = &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{
			Headers: headers,
			QueryParameters: &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{
				Filter: &filter, Select: []string{"id", "receivedDateTime"},
			},
		}
	}
	seen := map[string]bool{}
	var missed []MissedMessage
	for rec.Pages < maxPages*10 {
		var resp users.ItemMailFoldersItemMessagesDeltaGetResponseable
		_, err := e.call(ctx, "GET /users/{id}/mailFolders/{id}/messages/delta()", true, func(ctx context.Context) error {
			var err error
			resp, err = b.GetAsDeltaGetResponse(ctx, cfg)
			return err
		})
		if err != nil {
			return Reconciliation{}, err
		}
		rec.Pages++
		if resp == nil {
			break
		}
		for _, m := range resp.GetValue() {
			id := deref(m.GetId())
			if id == "" || seen[id] {
				continue
			}
			if _, removed := m.GetAdditionalData()["@removed"]; removed {
				continue // deleted since: nothing to process
			}
			r := m.GetReceivedDateTime()
			if r == nil || (!since.IsZero() && r.Before(since)) || !r.Before(until) {
				continue
			}
			seen[id] = true
			missed = append(missed, MissedMessage{ID: id, ReceivedDateTime: rfc3339(*r)})
		}
		if d := deref(resp.GetOdataDeltaLink()); d != "" {
			rec.DeltaLink = d
			break
		}
		next := deref(resp.GetOdataNextLink())
		if next == "" {
			break
		}
		if _, err := e.checkLink(next); err != nil {
			return Reconciliation{}, err
		}
		b, cfg = b.WithUrl(next), &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: headers}
	}
	return finish(rec, missed), nil
}

// finish sorts the missed messages by arrival, counts and caps them.
func finish(rec Reconciliation, missed []MissedMessage) Reconciliation {
	slices.SortStableFunc(missed, func(a, b MissedMessage) int { return strings.Compare(a.ReceivedDateTime, b.ReceivedDateTime) })
	rec.MissedCount = len(missed)
	if len(missed) > MaxMissed {
		missed, rec.Truncated = missed[:MaxMissed], true
	}
	rec.Missed = append(rec.Missed, missed...)
	return rec
}

// mailboxNote says how a whole-mailbox reconcile was done, and why not by delta.
const mailboxNote = "the subscription's resource users/{id}/messages covers every folder of the mailbox " +
	"(https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview); delta query works per folder " +
	"(https://learn.microsoft.com/en-us/graph/delta-query-messages), so the lapse was listed with GET /users/{id}/messages " +
	"filtered on receivedDateTime, every folder including Deleted Items (https://learn.microsoft.com/en-us/graph/api/user-list-messages)"

// reconcileMailbox lists the messages received in [since, until) in every folder
// of the mailbox: GET /users/{id}/messages with a receivedDateTime filter. A
// users/{id}/messages subscription notifies for all of them, so reconciling the
// Inbox alone would miss what rules moved elsewhere. No deltaLink comes back: the
// list is not a sync.
func (e *Executor) reconcileMailbox(ctx context.Context, s *session, mailbox string, since, until time.Time) (Reconciliation, error) {
	rec := Reconciliation{Mailbox: mailbox, Scope: "mailbox", Since: rfc3339(since), Until: rfc3339(until), Missed: []MissedMessage{}, Note: mailboxNote}
	b := users.NewUsersRequestBuilderInternal(map[string]string{}, s.adapter).ByUserId(mailbox).Messages()
	filter := "receivedDateTime ge " + graphTime(since) + " and receivedDateTime lt " + graphTime(until)
	top := int32(deltaPageSize)
	cfg := &users.ItemMessagesRequestBuilderGetRequestConfiguration{QueryParameters: &users.ItemMessagesRequestBuilderGetQueryParameters{
		Filter: &filter, Select: []string{"id", "receivedDateTime", "parentFolderId"}, Top: &top,
	}}
	seen := map[string]bool{}
	var missed []MissedMessage
	for rec.Pages < maxPages*10 {
		var resp models.MessageCollectionResponseable
		_, err := e.call(ctx, "GET /users/{id}/messages", true, func(ctx context.Context) error {
			var err error
			resp, err = b.Get(ctx, cfg)
			return err
		})
		if err != nil {
			return Reconciliation{}, err
		}
		rec.Pages++
		if resp == nil {
			break
		}
		for _, m := range resp.GetValue() {
			id := deref(m.GetId())
			r := m.GetReceivedDateTime()
			if id == "" || seen[id] || r == nil || r.Before(since) || !r.Before(until) {
				continue
			}
			seen[id] = true
			missed = append(missed, MissedMessage{ID: id, ReceivedDateTime: rfc3339(*r)})
		}
		next := deref(resp.GetOdataNextLink())
		if next == "" {
			break
		}
		if _, err := e.checkLink(next); err != nil {
			return Reconciliation{}, err
		}
		b, cfg = b.WithUrl(next), nil
	}
	return finish(rec, missed), nil
}

// mailbox is where a mail subscription's resource points; folder "" is every folder.
type mailbox struct {
	user, folder string
}

var (
	folderResourceRE = lazyre.New(`(?i)^/?users/([^/]+)/mailfolders(?:\('([^']+)'\)|/([^/]+))/messages/?$`)
	allMailRE        = lazyre.New(`(?i)^/?users/([^/]+)/messages/?$`)
)

// mailResource recognises users/{u}/mailFolders('{f}')/messages,
// users/{u}/mailFolders/{f}/messages and users/{u}/messages. The last one is
// "changes to all messages in a user's mailbox" (Outlook change notifications,
// https://learn.microsoft.com/en-us/graph/outlook-change-notifications-overview),
// not the Inbox: its folder is "" and the whole mailbox is reconciled.
func mailResource(resource string) (mailbox, bool) {
	if m := folderResourceRE().FindStringSubmatch(resource); m != nil {
		mb := mailbox{user: m[1], folder: cmpOr(m[2], m[3])}
		return mb, idRE().MatchString(mb.user) && idRE().MatchString(mb.folder)
	}
	if m := allMailRE().FindStringSubmatch(resource); m != nil {
		return mailbox{user: m[1]}, idRE().MatchString(m[1])
	}
	return mailbox{}, false
}

package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// MessageTrace is a row of the message-trace check: a message Exchange Online traced
// (GET /admin/exchange/tracing/messageTraces, permission
// ExchangeMessageTrace.Read.All), or — Available false — the reason the tenant
// cannot be traced through Graph. The subject is left out.
type MessageTrace struct {
	Available bool `json:"Available"`

	ID               string `json:"Id,omitempty"`
	MessageID        string `json:"MessageId,omitempty"`
	ReceivedDateTime string `json:"ReceivedDateTime,omitempty"`
	SenderAddress    string `json:"SenderAddress,omitempty"`
	RecipientAddress string `json:"RecipientAddress,omitempty"`
	// Status: delivered, pending, failed, expanded, quarantined, filteredAsSpam,
	// gettingStatus.
	Status string `json:"Status,omitempty"`
	Size   int64  `json:"Size,omitempty"`
	FromIP string `json:"FromIP,omitempty"`
	ToIP   string `json:"ToIP,omitempty"`

	Reason     string `json:"Reason,omitempty"`
	HTTPStatus int    `json:"HTTPStatus,omitempty"`
	Code       string `json:"Code,omitempty"`
	RequestID  string `json:"RequestId,omitempty"`
}

type rawTrace struct {
	ID               string         `json:"id"`
	MessageID        string         `json:"messageId"`
	ReceivedDateTime graphTimeValue `json:"receivedDateTime"`
	SenderAddress    string         `json:"senderAddress"`
	RecipientAddress string         `json:"recipientAddress"`
	Status           string         `json:"status"`
	Size             int64          `json:"size"`
	FromIP           string         `json:"fromIP"`
	ToIP             string         `json:"toIP"`
}

// messageTraceApp is Microsoft's "Transport Data Platform" application: the tenant
// needs its service principal before message trace answers anything but 401.
const messageTraceApp = "8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"

var traceStatuses = []string{"delivered", "pending", "failed", "expanded", "quarantined", "filteredAsSpam", "gettingStatus"}

// messageTrace traces a sender's or a recipient's mail of the last hours.
//
// Params: sender and/or recipient (at least one; Graph matches each with eq),
// hours (default 24, at most 240: Graph's window is 10 days), status (optional),
// top (default 100, at most 1000 rows).
func (e *Executor) messageTrace(ctx context.Context, s *session, p map[string]any) ([]MessageTrace, error) {
	sender, err := emailParam(p, "sender")
	if err != nil {
		return nil, err
	}
	recipient, err := emailParam(p, "recipient")
	if err != nil {
		return nil, err
	}
	if sender == "" && recipient == "" {
		return nil, invalid("message trace needs a sender or a recipient parameter")
	}
	hours, err := executors.IntParam(p, "hours", 24, 1, 240)
	if err != nil {
		return nil, err
	}
	top, err := executors.IntParam(p, "top", 100, 1, 1000)
	if err != nil {
		return nil, err
	}
	status, _, err := stringParam(p, "status")
	if err != nil {
		return nil, err
	}
	if status != "" && !slices.Contains(traceStatuses, status) {
		return nil, invalid("parameter %q: %q is not one of %s", "status", status, strings.Join(traceStatuses, ", "))
	}
	if e.ep.Cloud != config.CloudGlobal {
		return []MessageTrace{{Available: false, Reason: fmt.Sprintf(
			"message trace through Graph exists only in the global cloud, not in %s: use Get-MessageTraceV2 in Exchange Online PowerShell", e.ep.Cloud)}}, nil
	}

	end := e.now().UTC().Truncate(time.Second)
	start := end.Add(-time.Duration(hours) * time.Hour)
	clauses := []string{"receivedDateTime ge " + graphTime(start), "receivedDateTime le " + graphTime(end)}
	if sender != "" {
		clauses = append(clauses, "senderAddress eq "+odataString(sender))
	}
	if recipient != "" {
		clauses = append(clauses, "recipientAddress eq "+odataString(recipient))
	}
	if status != "" {
		clauses = append(clauses, "status eq "+odataString(status))
	}
	q := url.Values{"$filter": {strings.Join(clauses, " and ")}, "$top": {strconv.Itoa(min(top, 1000))}}
	link := e.ep.GraphURL + "/admin/exchange/tracing/messageTraces?" + q.Encode()

	rows := []MessageTrace{}
	for range maxPages {
		body, _, err := e.getBytes(ctx, s, "GET /admin/exchange/tracing/messageTraces", e.pageRequest(link))
		if err != nil {
			if row, ok := traceUnavailable(err); ok {
				return []MessageTrace{row}, nil
			}
			return nil, err
		}
		pg, err := decodePage[rawTrace](body)
		if err != nil {
			return nil, err
		}
		for _, r := range pg.Value {
			rows = append(rows, MessageTrace{Available: true, ID: r.ID, MessageID: r.MessageID,
				ReceivedDateTime: rfc3339(r.ReceivedDateTime.Time), SenderAddress: r.SenderAddress,
				RecipientAddress: r.RecipientAddress, Status: r.Status, Size: r.Size, FromIP: r.FromIP, ToIP: r.ToIP})
		}
		if pg.NextLink == "" || len(rows) >= top {
			break
		}
		link = pg.NextLink
	}
	if len(rows) > top {
		rows = rows[:top]
	}
	return rows, nil
}

// traceUnavailable recognises the answers of a tenant that cannot use Graph message
// trace — as opposed to a failure of the request — and says what is missing.
func traceUnavailable(err error) (MessageTrace, bool) {
	var re *RequestError
	if !errors.As(err, &re) {
		return MessageTrace{}, false
	}
	msg := strings.ToLower(re.Message)
	var reason string
	switch {
	case re.Status == http.StatusUnauthorized && strings.Contains(msg, "service principal"):
		reason = "the tenant has no service principal for Microsoft's message trace application (" + messageTraceApp +
			"): an admin creates it (POST /servicePrincipals {\"appId\": \"" + messageTraceApp + "\"}); provisioning takes hours"
	case re.Status == http.StatusForbidden:
		reason = "the app may not read message traces: grant the ExchangeMessageTrace.Read.All application permission with admin consent"
	case re.Status == http.StatusNotFound,
		re.Status == http.StatusBadRequest && strings.Contains(msg, "resource not found for the segment"):
		reason = "Graph offers no message trace API to this tenant"
	default:
		return MessageTrace{}, false
	}
	reason += fmt.Sprintf(" (Graph said %d %s: %s)", re.Status, re.Code, truncate(re.Message, 200))
	return MessageTrace{Available: false, Reason: reason, HTTPStatus: re.Status, Code: re.Code, RequestID: re.RequestID}, true
}

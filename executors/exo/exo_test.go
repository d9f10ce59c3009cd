package exo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo/exofake"
	"github.com/ndrbot/ndrbot/incident"
)

func TestExecutorContract(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	assert.Equal(t, "exo", h.exec.Kind())
	assert.Equal(t, []string{exofake.DefaultTenant}, h.exec.Hosts(), "one host: the tenant")
	_, err := h.exec.Run(context.Background(), "ex01.contoso.com", executors.Action{Cmdlet: "Get-AcceptedDomain"})
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
	for _, a := range []executors.Action{{Script: "Get-Mailbox"}, {Check: "service-health"}, {Cmdlet: "Get-Mailbox; Remove-Mailbox"},
		{Cmdlet: "Get-Mailbox", Args: []executors.Arg{arg("Identity; x", "a")}}} {
		out, err := h.exec.Run(context.Background(), h.exec.Hosts()[0], a)
		assert.ErrorIs(t, err, executors.ErrUnsupported, "%+v", a)
		assert.Contains(t, out.Stderr, err.Error())
	}
	assert.Empty(t, h.fake.EXORequests(), "refused before any request")
	assert.NotContains(t, fmt.Sprintf("%v %#v %+v", h.exec, h.exec, h.exec), testSecret)
}

// Each Admin API endpoint is reached at its documented URL with the CmdletInput
// body, the X-AnchorMailbox its target calls for, the app-only token for the
// Exchange Online resource, and pages followed by POSTing the same body to
// @odata.nextLink.
func TestAdminAPIRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cmdlet  string
		fixture string
		args    []executors.Arg
		sel     []string
		path    string
		query   string
		anchor  string
		params  map[string]any
		rows    int
	}{
		{name: "accepted domains in two pages", cmdlet: "Get-AcceptedDomain", fixture: "accepted-domains.json",
			path: "/adminapi/v2.0/contoso.onmicrosoft.com/AcceptedDomain", rows: 3,
			anchor: "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com", params: map[string]any{}},
		{name: "organization config, one object", cmdlet: "Get-OrganizationConfig", fixture: "organization-config.json",
			path: "/adminapi/v2.0/contoso.onmicrosoft.com/OrganizationConfig", rows: 1,
			anchor: "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com", params: map[string]any{}},
		{name: "one mailbox, anchored on it, selected", cmdlet: "get-mailbox", fixture: "mailbox.json",
			args: []executors.Arg{arg("identity", "alex@contoso.com"), arg("ResultSize", int64(10))},
			sel:  []string{"PrimarySmtpAddress", "ProhibitSendQuota"},
			path: "/adminapi/v2.0/contoso.onmicrosoft.com/Mailbox", query: "$select=PrimarySmtpAddress,ProhibitSendQuota",
			anchor: "UPN:alex@contoso.com", params: map[string]any{"Identity": "alex@contoso.com", "ResultSize": float64(10)}, rows: 2},
		{name: "folder permission anchored on the mailbox", cmdlet: "Get-MailboxFolderPermission", fixture: "accepted-domains.json",
			args: []executors.Arg{arg("Identity", `alex@contoso.com:\Calendar`)},
			path: "/adminapi/v2.0/contoso.onmicrosoft.com/MailboxFolderPermission", anchor: "UPN:alex@contoso.com",
			params: map[string]any{"Identity": `alex@contoso.com:\Calendar`}, rows: 3},
		{name: "group members", cmdlet: "Get-DistributionGroupMember", fixture: "mailbox.json",
			args:   []executors.Arg{arg("Identity", "sales@contoso.com"), arg("ResultSize", "Unlimited")},
			path:   "/adminapi/v2.0/contoso.onmicrosoft.com/DistributionGroupMember",
			anchor: "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com",
			params: map[string]any{"Identity": "sales@contoso.com", "ResultSize": "Unlimited"}, rows: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.fake.SetObjects(tt.cmdlet, fixture(t, tt.fixture)...)
			out, err := h.run(t, tt.cmdlet, tt.args, tt.sel, 10*time.Second)
			require.NoError(t, err)
			assert.False(t, out.Truncated)
			assert.Contains(t, out.Stderr, "route: AdminAPI")
			rows := rowsOf(t, out)
			require.Len(t, rows, tt.rows)
			for _, r := range rows {
				assert.Equal(t, "AdminAPI", r[RouteField])
				if tt.sel != nil {
					assert.Len(t, r, len(tt.sel)+1+len(unlimitedFlags(r)), "exactly the selection, the route and Unlimited flags: %v", r)
				}
			}
			reqs := h.fake.EXORequests()
			require.Len(t, reqs, (tt.rows+1)/2, "one request per page of two")
			for i, r := range reqs {
				assert.Equal(t, http.MethodPost, r.Method)
				assert.Equal(t, "outlook.office365.com", r.Host)
				assert.Equal(t, tt.path, r.Path)
				assert.Equal(t, tt.anchor, r.Header.Get("X-AnchorMailbox"))
				assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
				assert.NotEmpty(t, r.Header.Get("client-request-id"))
				assert.Empty(t, r.Header.Get("X-CmdletName"), "a module header has no place on the documented route")
				in, err := r.Input()
				require.NoError(t, err)
				assert.True(t, strings.EqualFold(tt.cmdlet, in.CmdletInput.CmdletName))
				assert.Equal(t, tt.params, nonNil(in.CmdletInput.Parameters))
				assert.Equal(t, string(reqs[0].Body), string(r.Body), "every page POSTs the same body")
				if i == 0 {
					assert.Equal(t, tt.query, unescape(r.RawQuery))
				} else {
					assert.Contains(t, r.RawQuery, "skiptoken")
				}
			}
			tok := h.fake.TokenRequests()
			require.NotEmpty(t, tok)
			assert.Equal(t, "https://outlook.office365.com/.default", tok[0].Scope())
		})
	}
}

func unlimitedFlags(r map[string]any) []string {
	var out []string
	for k := range r {
		if strings.HasSuffix(k, executors.UnlimitedSuffix) {
			out = append(out, k)
		}
	}
	return out
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func unescape(q string) string {
	return strings.NewReplacer("%24", "$", "%2C", ",").Replace(q)
}

// A cmdlet the Admin API does not take — or takes without one of the given
// parameters — goes to the module's endpoint only when the target opted in;
// otherwise it is refused before any request, with a message that says why and
// which key allows it.
func TestModuleEndpointIsOptIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmdlet string
		args   []executors.Arg
		want   string
	}{
		{"Get-MessageTraceV2", []executors.Arg{arg("SenderAddress", "alex@contoso.com")}, "the Exchange Online Admin API has no endpoint for it"},
		{"Get-Mailbox", []executors.Arg{arg("RecipientTypeDetails", "SharedMailbox")}, "Mailbox endpoint does not take RecipientTypeDetails"},
		{"Get-OutboundConnector", nil, "has no endpoint for it"},
	}
	for _, tt := range tests {
		t.Run(tt.cmdlet, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			out, err := h.run(t, tt.cmdlet, tt.args, nil, 5*time.Second)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrModuleEndpointOff)
			assert.ErrorIs(t, err, executors.ErrUnsupported)
			for _, w := range []string{tt.want, "InvokeCommand endpoint of the Exchange Online PowerShell V3 module",
				"Microsoft does not document it for direct use", "targets.exo.allow_module_endpoint: true"} {
				assert.Contains(t, err.Error(), strings.Replace(w, "it for", "for", 1))
			}
			assert.Contains(t, out.Stderr, err.Error())
			assert.Empty(t, h.fake.EXORequests())
		})
	}
}

// With allow_module_endpoint the cmdlet goes to InvokeCommand, as the V3 module
// sends it, and its rows come back in the shapes a PowerShell target writes.
func TestInvokeCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(tg *config.Target) { tg.AllowModuleEndpoint = true })
	h.fake.SetObjects("Get-MessageTraceV2", fixture(t, "message-trace-v2.json")...)
	start := time.Date(2026, 5, 14, 22, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	out, err := h.run(t, "Get-MessageTraceV2", []executors.Arg{arg("SenderAddress", "alex@contoso.com"),
		arg("StartDate", start), arg("Status", []any{"Failed", "Pending"})}, nil, 10*time.Second)
	require.NoError(t, err)
	assert.Contains(t, out.Stderr, "route: InvokeCommand")
	assert.Contains(t, out.Stderr, "undocumented for direct use")
	rows := rowsOf(t, out)
	require.Len(t, rows, 3)
	assert.Equal(t, map[string]any{
		"MessageTraceId": "6c1f0b2a-3d4e-4f5a-b6c7-08de1f2a3b4c", "MessageId": "<BY5PR01MB1234.namprd01.prod.outlook.com@contoso.com>",
		"Received": "2026-05-15T00:05:19Z", "SenderAddress": "alex@contoso.com", "RecipientAddress": "bob@fabrikam.com",
		"FromIP": "2a01:111:f403:c112::5", "ToIP": "", "Subject": "Quarterly numbers", "Status": "Failed", "Size": float64(176814),
		RouteField: "InvokeCommand",
	}, rows[0])
	reqs := h.fake.EXORequests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		assert.Equal(t, "/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand", r.Path)
		assert.Equal(t, "Get-MessageTraceV2", r.Header.Get("X-CmdletName"))
		assert.Equal(t, "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com", r.Header.Get("X-AnchorMailbox"))
		assert.Equal(t, "odata.maxpagesize=1000", r.Header.Get("Prefer"))
		in, err := r.Input()
		require.NoError(t, err)
		assert.Equal(t, map[string]any{"SenderAddress": "alex@contoso.com", "StartDate": "2026-05-14T20:00:00Z",
			"Status": []any{"Failed", "Pending"}}, in.CmdletInput.Parameters)
	}
	// A Get-Mailbox the Admin API can answer still goes there.
	h.fake.SetObjects("Get-Mailbox", fixture(t, "mailbox.json")...)
	out, err = h.run(t, "Get-Mailbox", nil, nil, 10*time.Second)
	require.NoError(t, err)
	assert.Contains(t, out.Stderr, "route: AdminAPI")
	// And one it cannot, with -Filter, goes to InvokeCommand.
	out, err = h.run(t, "Get-Mailbox", []executors.Arg{arg("Filter", "RecipientTypeDetails -eq 'SharedMailbox'")}, nil, 10*time.Second)
	require.NoError(t, err)
	assert.Contains(t, out.Stderr, "route: InvokeCommand")
}

// 429 and 5xx are retried: after Retry-After when the answer has one (seconds or
// an HTTP date), else after the policy's growing waits; a wait that would pass
// the step's deadline is not started.
func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		faults   []exofake.Fault
		timeout  time.Duration
		ok       bool
		attempts int
		minGaps  []time.Duration // least time between successive attempts
		maxGaps  []time.Duration
		want     []string
	}{
		{name: "429 with Retry-After seconds", faults: []exofake.Fault{{Status: 429, RetryAfter: "1", Times: 1}},
			timeout: 10 * time.Second, ok: true, attempts: 2, minGaps: []time.Duration{time.Second}},
		{name: "429 without Retry-After backs off", faults: []exofake.Fault{{Status: 429, Times: 2}},
			timeout: 10 * time.Second, ok: true, attempts: 3,
			minGaps: []time.Duration{75 * time.Millisecond, 150 * time.Millisecond}, maxGaps: []time.Duration{900 * time.Millisecond, 900 * time.Millisecond}},
		{name: "503 then 500 then an answer", faults: []exofake.Fault{{Status: 503, Times: 1}, {Status: 500, Times: 1}},
			timeout: 10 * time.Second, ok: true, attempts: 3},
		{name: "Retry-After as an HTTP date", faults: []exofake.Fault{{Status: 503, Times: 1, RetryAfter: "date+3s"}},
			timeout: 10 * time.Second, ok: true, attempts: 2, minGaps: []time.Duration{time.Second}},
		{name: "Retry-After past the deadline", faults: []exofake.Fault{{Status: 429, Times: -1, RetryAfter: "30"}},
			timeout: 2 * time.Second, attempts: 1, want: []string{"429 Too Many Requests", "after 1 attempt", "stopped by the step deadline"}},
		{name: "a storm outlasts the attempts", faults: []exofake.Fault{{Status: 503, Times: -1}},
			timeout: 20 * time.Second, attempts: 5, want: []string{"503 Service Unavailable", "after 5 attempts"}},
		{name: "a 400 is not retried", faults: []exofake.Fault{{Status: 400, Times: -1, Body: `{"error":{"code":"BadRequest","message":"Invalid Operation"}}`}},
			timeout: 10 * time.Second, attempts: 1, want: []string{"400 Bad Request (BadRequest: Invalid Operation)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			retried := 0
			h := newHarness(t, nil, WithRetried(func(int) { mu.Lock(); retried++; mu.Unlock() }))
			h.fake.SetObjects("Get-AcceptedDomain", fixture(t, "accepted-domains.json")[:1]...)
			for _, f := range tt.faults {
				if f.RetryAfter == "date+3s" {
					// An HTTP date counts whole seconds: 3 s ahead waits at least 2.
					f.RetryAfter = time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
				}
				h.fake.AddFault(f)
			}
			start := time.Now()
			_, err := h.run(t, "Get-AcceptedDomain", nil, nil, tt.timeout)
			reqs := h.fake.EXORequests()
			assert.Len(t, reqs, tt.attempts)
			mu.Lock()
			assert.Equal(t, tt.attempts-1, retried, "each request sent again is told (the metrics)")
			mu.Unlock()
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				var re *RequestError
				require.ErrorAs(t, err, &re)
				assert.NotEmpty(t, re.RequestID)
				for _, w := range append(tt.want, "exo Get-AcceptedDomain via AdminAPI (POST /adminapi/v2.0/{tenant}/AcceptedDomain)", "request-id "+re.RequestID) {
					assert.Contains(t, err.Error(), w)
				}
				if re.Status == http.StatusTooManyRequests || re.Status >= 500 {
					assert.ErrorIs(t, err, incident.ErrUnavailable)
				}
				assert.Less(t, time.Since(start), tt.timeout, "never past the deadline")
			}
			for i, gap := range tt.minGaps {
				assert.GreaterOrEqual(t, reqs[i+1].Time.Sub(reqs[i].Time), gap, "wait before attempt %d", i+2)
			}
			for i, gap := range tt.maxGaps {
				assert.Less(t, reqs[i+1].Time.Sub(reqs[i].Time), gap, "wait before attempt %d", i+2)
			}
		})
	}
}

// Every failure names the cmdlet, the route, the status, Exchange's own reason
// and the request ids, and maps to the kind of failure the engine reports —
// never the secret or the token.
func TestFailuresNameTheirCause(t *testing.T) {
	t.Parallel()
	notFound := string(fixture(t, "error-not-found.json")[0])
	badParam := string(fixture(t, "error-bad-parameter.json")[0])
	tests := []struct {
		name  string
		fault exofake.Fault
		kind  error
		want  []string
	}{
		{name: "403 without a body: RBAC", kind: incident.ErrNotAllowed,
			fault: exofake.Fault{Status: 403, Times: -1, Diagnostics: `2000008;reason="The app does not hold a role that allows this cmdlet.";error_category="insufficient_role"`},
			want:  []string{"403 Forbidden", "x-ms-diagnostics: 2000008", "lacks the Exchange Online RBAC role"}},
		{name: "403 with an Exchange error", kind: incident.ErrNotAllowed,
			fault: exofake.Fault{Status: 403, Times: -1, Body: `{"error":{"code":"Forbidden","message":"Access denied","innererror":{"message":"Access denied","type":"Microsoft.Exchange.Admin.OData.Core.ODataServiceException","stacktrace":""}}}`},
			want:  []string{"403 Forbidden (Forbidden: Access denied)"}},
		{name: "401 with x-ms-diagnostics", kind: executors.ErrAuth,
			fault: exofake.Fault{Status: 401, Times: -1, Diagnostics: `2000003;reason="Invalid audience Uri 'https://graph.microsoft.com'.";error_category="invalid_resource"`},
			want:  []string{"401 Unauthorized", "Invalid audience Uri"}},
		{name: "404 object not found", kind: incident.ErrNotFound,
			fault: exofake.Fault{Status: 404, Times: -1, Body: notFound},
			want:  []string{"404 Not Found (NotFound: ManagementObjectNotFoundException: The operation couldn't be performed because object 'nobody@contoso.com' couldn't be found"}},
		{name: "400 parameter transformation", kind: nil,
			fault: exofake.Fault{Status: 400, Times: -1, Body: badParam},
			want:  []string{"400 Bad Request (BadRequest: Cannot process argument transformation on parameter 'Status'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			h.fake.SetObjects("Get-AcceptedDomain", fixture(t, "accepted-domains.json")...)
			h.fake.AddFault(tt.fault)
			out, err := h.run(t, "Get-AcceptedDomain", []executors.Arg{arg("Identity", "nobody@contoso.com")}, nil, 5*time.Second)
			require.Error(t, err)
			var re *RequestError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 1, re.Attempts, "not retried")
			for _, w := range append(tt.want, "exo Get-AcceptedDomain via AdminAPI", "request-id "+re.RequestID,
				"client-request-id "+h.fake.EXORequests()[0].Header.Get("client-request-id")) {
				assert.Contains(t, err.Error(), w)
			}
			if tt.kind != nil {
				assert.ErrorIs(t, err, tt.kind)
			}
			for _, text := range []string{err.Error(), out.Stderr, h.logs.String()} {
				assert.NotContains(t, text, testSecret)
				assert.NotContains(t, text, "fake-exo-token")
			}
		})
	}
}

// Paging stops at the executor's bounds with the output marked truncated, and a
// nextLink to another host is not followed (the bearer token would go along).
func TestPagingBounds(t *testing.T) {
	t.Parallel()
	domains := fixture(t, "accepted-domains.json")
	many := append(append(append(domains, domains...), domains...), domains...) // 12
	tests := []struct {
		name      string
		opts      []Option
		rows      int
		requests  int
		truncated string
	}{
		{name: "all pages", rows: 12, requests: 6},
		{name: "page bound", opts: []Option{WithLimits(2, 0, 0)}, rows: 4, requests: 2, truncated: "after 2 page(s) and 4 row(s)"},
		{name: "row bound", opts: []Option{WithLimits(0, 5, 0)}, rows: 5, requests: 3, truncated: "kept the first 5 rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, tt.opts...)
			h.fake.SetObjects("Get-AcceptedDomain", many...)
			out, err := h.run(t, "Get-AcceptedDomain", nil, nil, 10*time.Second)
			require.NoError(t, err)
			assert.Len(t, rowsOf(t, out), tt.rows)
			assert.Len(t, h.fake.EXORequests(), tt.requests)
			assert.Equal(t, tt.truncated != "", out.Truncated)
			if tt.truncated != "" {
				assert.Contains(t, out.Stderr, "output truncated")
				assert.Contains(t, out.Stderr, tt.truncated)
			}
		})
	}
	t.Run("a page too large", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, WithLimits(0, 0, 512))
		h.fake.SetObjects("Get-AcceptedDomain", domains...)
		_, err := h.run(t, "Get-AcceptedDomain", nil, nil, 5*time.Second)
		assert.ErrorIs(t, err, executors.ErrOutputTooBig)
	})
	t.Run("a nextLink elsewhere", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		h.fake.NextLinkHost = "outlook.attacker.example"
		h.fake.SetObjects("Get-AcceptedDomain", domains...)
		_, err := h.run(t, "Get-AcceptedDomain", nil, nil, 5*time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not to outlook.office365.com: not followed")
		for _, r := range h.fake.Requests() {
			assert.NotEqual(t, "outlook.attacker.example", r.Host)
		}
	})
}

// A connection reset on a read is retried like a 503; a refused token ends the
// step at once, naming the authority's reason and never the secret.
func TestResetAndToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.fake.SetObjects("Get-AcceptedDomain", fixture(t, "accepted-domains.json")[:1]...)
	h.fake.AddFault(exofake.Fault{Reset: true, Times: 1})
	_, err := h.run(t, "Get-AcceptedDomain", nil, nil, 5*time.Second)
	require.NoError(t, err)
	assert.Len(t, h.fake.EXORequests(), 2)

	h2 := newHarness(t, nil)
	h2.fake.ClientSecret = "rotated"
	_, err = h2.run(t, "Get-AcceptedDomain", nil, nil, 5*time.Second)
	require.Error(t, err)
	assert.ErrorIs(t, err, executors.ErrAuth)
	assert.Contains(t, err.Error(), "no token from 127.0.0.1")
	assert.Contains(t, err.Error(), "AADSTS7000215")
	assert.NotContains(t, err.Error(), testSecret)
	assert.Empty(t, h2.fake.EXORequests())
}

func TestCanceled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.fake.AddFault(exofake.Fault{Status: 429, RetryAfter: "1", Times: -1})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := h.exec.Run(ctx, h.exec.Hosts()[0], executors.Action{Cmdlet: "Get-AcceptedDomain", Timeout: 10 * time.Second})
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
}

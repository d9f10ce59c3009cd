package watch_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/slack"
)

var update = flag.Bool("update", false, "rewrite the alert golden files in slack/testdata/golden from the renderer")

// The watch's notice about its subscription, kept with the renderer's golden files.
func TestNoticeRenderGolden(t *testing.T) {
	at := time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC)
	v := commands.NoticeView{Severity: "critical", Title: "NDR watch: Graph subscription renewal keeps failing", At: at,
		Text: "14 renewals of subscription 7f105c7d-2dc5-4530-97cd-4e7ae6534c07 failed; it expires at 2026-11-30 10:00 UTC (in 18h0m0s). " +
			"The bot keeps retrying, then recreates it and reconciles by delta; the watch keeps polling meanwhile. " +
			"Last error: graph PATCH /subscriptions/7f105c7d-2dc5-4530-97cd-4e7ae6534c07: 503 ExtensionError: Operation: Update; Exception: [Status Code: ServiceUnavailable; Reason: ] (request-id <none>)"}
	r, err := slack.Renderer{}.Render(commands.Message{Channel: "C0ESC", TopLevel: true, Key: "watch-notice:x", Notice: &v})
	require.NoError(t, err)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(r))
	path := filepath.Join("..", "slack", "testdata", "golden", "notice-renewal-failing.json")
	if *update {
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./watch -run TestNoticeRenderGolden -update to create it")
	assert.JSONEq(t, string(want), b.String())
	assert.Contains(t, b.String(), "&lt;none&gt;", "escaped")
}

// The alert's Block Kit, kept with the renderer's other golden files.
func TestAlertRenderGolden(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 0, 0, time.UTC)
	base := commands.AlertView{AlertID: "wa-20261123-0e1049f3a2", Code: "5.5.4", Messages: 37, Domains: 12, Window: 5 * time.Minute,
		Threshold: 20, Mailbox: "postmaster@contoso.com", First: at.Add(-4 * time.Minute), Last: at,
		TopDomains: []commands.DomainCount{{Domain: "fabrikam.com", Messages: 9}, {Domain: "northwind.example", Messages: 6},
			{Domain: "tailspin.example", Messages: 4}, {Domain: "wingtip.example", Messages: 3}, {Domain: "adatum.example", Messages: 3}},
		Sample:   "Remote Server returned '550 5.5.4 Service Unavailable'",
		Playbook: "ndr-5.5.4", PlaybookTitle: "NDR 5.5.4 Service Unavailable", Button: "5.5.4", At: at}
	started := base
	started.DiagnosisBy, started.DiagnosisAt = commands.Actor{ID: "U0REQ", Name: "req"}, at.Add(2*time.Minute)
	noPlaybook := base
	noPlaybook.Code, noPlaybook.Playbook, noPlaybook.PlaybookTitle, noPlaybook.Button = "5.7.1", "", "", ""
	noPlaybook.Hint = "No playbook matches 5.7.1 (/ndr playbooks lists them)."
	noPlaybook.Sample = "Remote Server returned '550 5.7.1 <!channel> relay denied'"

	cases := map[string]commands.AlertView{"alert-pending": base, "alert-diagnosis-started": started, "alert-no-playbook": noPlaybook}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := slack.Renderer{Now: func() time.Time { return at }}.Render(commands.Message{Channel: "C0ESC", TopLevel: true,
				Key: commands.WatchAlertKey(v.AlertID), Alert: &v})
			require.NoError(t, err)
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			require.NoError(t, enc.Encode(r))
			path := filepath.Join("..", "slack", "testdata", "golden", name+".json")
			if *update {
				require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./watch -run TestAlertRenderGolden -update to create it")
			assert.JSONEq(t, string(want), b.String())

			raw := b.String()
			assert.Contains(t, r.Text, "NDR "+v.Code+" spike: 37 in 5 min across 12 domains")
			switch {
			case v.Button != "" && v.DiagnosisBy.IsZero():
				assert.Equal(t, 1, strings.Count(raw, `"action_id": "run-diagnosis"`))
				assert.Contains(t, raw, `"value": "5.5.4"`, "the button carries the playbook code")
			default:
				assert.NotContains(t, raw, `"type": "actions"`, "no button")
			}
			assert.NotContains(t, raw, "<!channel>", "NDR text is escaped")
		})
	}
}

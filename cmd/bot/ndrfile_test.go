package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors/lab"
)

// ndrSample is the absolute path of a bounce sample (bounce/testdata, sources
// in its README): each test runs in a directory of its own.
func ndrSample(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "bounce", "testdata", name))
	require.NoError(t, err)
	return p
}

// `ndrbot diagnose --ndr-file` picks the playbook for every sample of
// bounce/testdata through the real command and runs it in a lab scenario of
// that playbook; several fitting are listed with the command for each, none
// fitting gets the closest, a report without a status code is told what to
// give. A new sample needs a row; a new playbook that changes a choice (issue
// 15's next families) changes its row.
func TestDiagnoseNDRFileSamples(t *testing.T) {
	tests := []struct {
		file     string
		playbook string // the playbook run; "" when none runs
		scenario string // its lab scenario
		code     int
		want     []string
	}{
		{"exchange2019-5.5.4.eml", "ndr-5.5.4", "overloaded-queue", exitFindings, []string{
			"Read 550 5.5.4 for bob@fabrikam.com from ex01.contoso.com, recipient domain fabrikam.com, sender alice@contoso.com; running ndr-5.5.4\n",
			"params: sender=alice@contoso.com window=15m", "Proposed relief: restart-transport"}},
		{"exchange-fr-paste-5.5.4.txt", "ndr-5.5.4", "eop-side", exitEscalation, []string{
			"Read 550 5.5.4 for bob@fabrikam.com from ex01.contoso.com, recipient domain fabrikam.com, sender lea@contoso.com; running ndr-5.5.4",
			"params: sender=lea@contoso.com"}},
		{"outlook-paste-multi.txt", "ndr-5.5.4", "network-down", exitEscalation, []string{
			"Read 550 5.1.1 for frank@fabrikam.com from ex01.contoso.com, recipient domain fabrikam.com, sender harriet@contoso.com; running ndr-5.5.4",
			"params: sender=harriet@contoso.com", "ESCALATE to Network team"}},
		{"postfix-4.3.2.eml", "smtp-421", "concurrency-too-high", exitFindings, []string{
			"Read 421 4.3.2 for carol@fabrikam.com from relay.contoso.com, recipient domain fabrikam.com, sender dave@contoso.com; running smtp-421",
			"params: connections=5 domain=fabrikam.com sending_domain=contoso.com", "Proposed relief: lower-per-domain-connections"}},
		// The expiry's last attempt met 454 4.7.5 behind a 451 4.4.0: the
		// certificate playbook is offered between the expiry's and 5.5.4's.
		{"dsn-fields-4.4.7.txt", "", "", exitUsage, []string{
			"Read 550 4.4.7 for heidi@fabrikam.com from ex01.contoso.com, recipient domain fabrikam.com; 3 playbooks fit it, best first:",
			"1. ndr-4.4.7 — ", "ndrbot diagnose ndr-4.4.7 --ndr-file ", "2. hybrid-tls — ", "ndrbot diagnose hybrid-tls --ndr-file ",
			"3. ndr-5.5.4 — ", "ndrbot diagnose ndr-5.5.4 --ndr-file "}},
		// Hybrid certificate trouble: the bounce names no parameter the playbook
		// needs; each sample runs the scenario of its branch. The renewal is
		// offered to the send connector and to the frontends, which still name
		// the old certificate too.
		{"queue-paste-454-4.7.5.txt", "hybrid-tls", "cert-renewed-not-bound", exitFindings, []string{
			"Read 454 4.7.5", "running hybrid-tls\n", "Proposed relief: bind-send-cert", "Proposed relief: bind-frontend-cert"}},
		{"exchange2019-5.7.64.txt", "hybrid-tls", "tenant-connector-mismatch", exitEscalation, []string{
			"Read 550 5.7.64 for carol@fabrikam.com from ex01.contoso.com, recipient domain fabrikam.com, sender alice@contoso.com; running hybrid-tls\n",
			"550 5.7.64 TenantAttribution", "ESCALATE to The Exchange Online administrator of the hybrid"}},
		{"exo-trace-4.4.317.txt", "hybrid-tls", "cert-expired", exitEscalation, []string{
			"Read 450 4.4.317", "running hybrid-tls\n", "450 4.4.317 Cannot connect to remote server",
			"ESCALATE to The certificate's owner"}},
		{"exchange-delay-4.4.7-421.txt", "", "", exitUsage, []string{
			"2 playbooks fit it, best first:", "1. ndr-4.4.7 — ", "from the bounce: domain=fabrikam.com sender=erin@contoso.com",
			"2. smtp-421 — ", `the reply behind the report's 400 4.4.7 for dave@fabrikam.com is 421 4.3.2`,
			"from the bounce: domain=fabrikam.com sending_domain=contoso.com", "ndrbot diagnose smtp-421 --ndr-file "}},
		{"exo-5.7.708.eml", "ndr-5.7.708", "tenant-blocked", exitEscalation, []string{
			"Read 550 5.7.708 for bob@fabrikam.com from sa1pr11mb8765.namprd11.prod.outlook.com, recipient domain fabrikam.com, sender alice@contoso.com; running ndr-5.7.708\n",
			"params: sender=alice@contoso.com", "ESCALATE to Microsoft support"}},
		// 554 5.2.0 SubmissionQuotaExceeded is ndr-5.5.4's sender throttling.
		// This sender's mailbox is in Exchange Online: the on-premises
		// Get-Mailbox does not find it, the tenant does, and its last 24 hours
		// reach Exchange Online's 10,000 recipients a day.
		{"exo-qp-5.2.0.eml", "ndr-5.5.4", "cloud-sender-over-quota", exitEscalation, []string{
			"Read 554 5.2.0 for statements@fabrikam.com from ch0pr11mb5678.namprd11.prod.outlook.com, recipient domain fabrikam.com, sender bulk-notices@contoso.com; running ndr-5.5.4\n",
			"params: sender=bulk-notices@contoso.com", "object 'bulk-notices@contoso.com' couldn't be found",
			"bulk-notices@contoso.com is a mailbox in Exchange Online", "at its limit of 10000 recipients a day"}},
		{"outlook-paste-exo-5.1.8.txt", "ndr-5.1.8", "sender-compromised", exitFindings, []string{
			"Read 550 5.1.8 for orders@fabrikam.com from bn8pr11mb3456.namprd11.prod.outlook.com, recipient domain fabrikam.com, sender alice@contoso.com; running ndr-5.1.8\n",
			"params: sender=alice@contoso.com"}},
		// SPF: our sending domain comes from the sender; the lab's contoso.com
		// sends through Exchange Online without its SPF include.
		{"owa-paste-exo-5.7.23.txt", "ndr-5.7.23", "spf-missing-exo", exitEscalation, []string{
			"Read 550 5.7.23 for ivan@fabrikam.com from dm6pr11mb1234.namprd11.prod.outlook.com, recipient domain fabrikam.com, sender alice@contoso.com; running ndr-5.7.23\n",
			"params: sending_domain=contoso.com", "include:spf.protection.outlook.com -all", "ESCALATE to The owner of the sending domain's public DNS zone"}},
		{"postfix-gmail-4.7.0.eml", "", "", exitUsage, []string{"Read 421 4.7.0 for erin@fabrikam.com", "no playbook handles 421 4.7.0. The closest:\n  smtp-421 — ",
			`this very code, though its wording "421 4.7.0 too many connections" is not in the reply`}},
		{"rfc3464-multi.eml", "", "", exitUsage, []string{"Read 550 5.0.0 for ann@fabrikam.com", "no playbook handles 550 5.0.0."}},
		{"rfc3464-simple.eml", "", "", exitUsage, []string{"Read 426 4.0.0 for louis@larry.fabrikam.com", "no playbook handles 426 4.0.0."}},
		// Exchange Online's SMTP AUTH thread limit: smtp-auth-432 ("432 4.3.2")
		// comes first; smtp-421's bare 4.3.2 still fits (typed "4.3.2" and the
		// NDR watch's button need it), so both are listed. The app's log does
		// not say which mailbox signed in.
		{"smtp-auth-432.txt", "", "", exitUsage, []string{"Read 432 4.3.2; 2 playbooks fit it, best first:",
			"1. smtp-auth-432 — ", "it does not say sender: add sender=<email>", "2. smtp-421 — "}},
		{"garbage.txt", "", "", exitUsage, []string{"does not read as a bounce. No SMTP status code"}},
		{"ndr-headers-only.txt", "", "", exitUsage, []string{"does not read as a bounce. No SMTP status code", "Remote Server returned"}},
		{"not-a-bounce.eml", "", "", exitUsage, []string{"does not read as a bounce. No SMTP status code"}},
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "bounce", "testdata", "*"))
	require.NoError(t, err)
	for _, f := range files {
		if name := filepath.Base(f); !strings.HasSuffix(name, ".md") {
			assert.True(t, slices.ContainsFunc(tests, func(tc struct {
				file, playbook, scenario string
				code                     int
				want                     []string
			}) bool {
				return tc.file == name
			}), "no row for sample %s", name)
		}
	}
	for _, tc := range tests {
		path := ndrSample(t, tc.file)
		t.Run(tc.file, func(t *testing.T) {
			t.Chdir(t.TempDir())
			args := []string{"diagnose", "--ndr-file", path}
			if tc.playbook != "" {
				require.Contains(t, lab.ScenariosFor(tc.playbook), tc.scenario)
				args = append(args, "--lab", tc.scenario)
			}
			r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, args...)
			assert.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			all := r.out + r.err
			for _, w := range tc.want {
				assert.Contains(t, all, w)
			}
			if tc.playbook != "" {
				assert.Contains(t, r.out, "running "+tc.playbook+"\n"+tc.playbook+" — ", "the run that follows is the chosen playbook's")
			} else {
				assert.NotContains(t, r.out, "run r-", "nothing ran")
			}
		})
	}
}

// What the admin adds on the command line: a playbook among several, values
// the bounce lacks or that override its own, the bounce on standard input, a
// choice at a terminal.
func TestDiagnoseNDRFileChoices(t *testing.T) {
	delay := ndrSample(t, "exchange-delay-4.4.7-421.txt")
	tests := []struct {
		name        string
		args        []string
		stdin       string
		interactive bool
		code        int
		want        []string
		notWant     []string
	}{
		{name: "a playbook named among several", args: []string{"diagnose", "smtp-421", "--ndr-file", delay, "--lab", "healthy"}, code: exitHealthy,
			want: []string{"sender erin@contoso.com; running smtp-421\nsmtp-421 — ", "params: connections=5 domain=fabrikam.com sending_domain=contoso.com"}},
		{name: "asked at a terminal", args: []string{"diagnose", "--ndr-file", delay, "--lab", "healthy"}, stdin: "2\n", interactive: true, code: exitHealthy,
			want: []string{"2 playbooks fit it, best first:", "Which one? [1-2, Enter for none] ", "running smtp-421\nsmtp-421 — "}},
		{name: "nothing chosen at a terminal", args: []string{"diagnose", "--ndr-file", delay, "--lab", "healthy"}, stdin: "\n", interactive: true, code: exitUsage,
			want: []string{"no playbook chosen; nothing was run"}, notWant: []string{"run r-"}},
		{name: "--no-input lists instead of asking", args: []string{"diagnose", "--ndr-file", delay, "--lab", "healthy", "--no-input"}, interactive: true, code: exitUsage,
			want:    []string{"Choose one and run its command.", "ndrbot diagnose ndr-4.4.7 --ndr-file " + delay + " --lab healthy"},
			notWant: []string{"Which one?"}},
		{name: "a value the bounce lacks", args: []string{"diagnose", "smtp-auth-432", "--ndr-file", ndrSample(t, "smtp-auth-432.txt"), "sender=billing@contoso.com",
			"--lab", "smtp-auth-parallel"}, code: exitEscalation,
			want: []string{"Read 432 4.3.2; running smtp-auth-432", "params: sender=billing@contoso.com window=1h"}},
		{name: "a value given overrides the bounce's", args: []string{"diagnose", "--ndr-file", ndrSample(t, "exchange2019-5.5.4.eml"), "sender=carol@contoso.com", "--lab", "overloaded-queue"},
			code: exitFindings, want: []string{"running ndr-5.5.4", "params: sender=carol@contoso.com window=15m"}},
		{name: "an invalid value given is refused", args: []string{"diagnose", "--ndr-file", ndrSample(t, "exchange2019-5.5.4.eml"), "sender=x'; Remove-Mailbox ceo", "--lab", "overloaded-queue"},
			code: exitUsage, want: []string{"is not an email address", "usage: ndrbot diagnose ndr-5.5.4 "}, notWant: []string{"run r-"}},
		{name: "a playbook named that does not fit", args: []string{"diagnose", "graph-503", "--ndr-file", ndrSample(t, "postfix-4.3.2.eml"), "--lab", "healthy"}, code: exitHealthy,
			want: []string{"running graph-503 as asked, though it does not fit the bounce\ngraph-503 — "}},
		{name: "the bounce on standard input", args: []string{"diagnose", "--ndr-file", "-", "--lab", "overloaded-queue"}, stdin: mustRead(t, ndrSample(t, "exchange2019-5.5.4.eml")),
			interactive: true, code: exitFindings,
			want:    []string{"sender alice@contoso.com; running ndr-5.5.4", "restart-transport not approved: nothing was changed. To run it: ndrbot diagnose ndr-5.5.4 --ndr-file - --lab overloaded-queue --approve restart-transport"},
			notWant: []string{"[y/N]"}},
		{name: "a file that is not there", args: []string{"diagnose", "--ndr-file", "missing.eml"}, code: exitUsage, want: []string{"--ndr-file: open missing.eml: no such file"}},
		{name: "neither code nor file", args: []string{"diagnose"}, code: exitUsage, want: []string{"give a CODE or PLAYBOOK, or a bounce with --ndr-file FILE"}},
		{name: "two playbooks named", args: []string{"diagnose", "smtp-421", "ndr-5.5.4", "--ndr-file", delay}, code: exitUsage, want: []string{`unexpected argument "ndr-5.5.4"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, tc.stdin, tc.interactive, tc.args...)
			assert.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			for _, w := range tc.want {
				assert.Contains(t, r.out+r.err, w)
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, r.out+r.err, w)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiagnose421LabScenarios(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"healthy exits 0", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "healthy"}, exitHealthy,
			[]string{"mx1.fabrikam.com (best MX of fabrikam.com) answered the bot's single connection with 220", "result: healthy (exit 0)"}},
		{"our concurrency is named and both reliefs proposed", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "concurrency-too-high"}, exitFindings,
			[]string{"Our concurrency is above what fabrikam.com accepts: EX01 opens up to 20 connections per destination domain",
				"Proposed relief: lower-per-domain-connections", "-MaxPerDomainOutboundConnections {{ args.connections }}",
				"data:     connections=5 (passed as values, never spliced into the command)", `"MaxPerDomainOutboundConnections":20`,
				"Proposed relief: retry-queue", `data:     connections=5 queues=[map[Host:ex01.lab.contoso.com Identity:EX01\18]]`,
				"lower-per-domain-connections not approved: nothing was changed"}},
		{"lowering and retrying verifies", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "concurrency-too-high",
			"--approve", "lower-per-domain-connections", "--approve", "retry-queue"}, exitFindings,
			[]string{"✓ verified: lower-per-domain-connections worked", "✓ verified: retry-queue worked",
				"after relief: • info     No queue to fabrikam.com holds mail on any server"}},
		{"a retry before lowering is refused by the server", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "concurrency-too-high",
			"--approve", "retry-queue"}, exitFindings,
			[]string{"✖ retry-queue failed:", "lower it first (relief lower-per-domain-connections)"}},
		{"an overloaded destination escalates to its postmaster after the relief", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "destination-overloaded",
			"--approve", "suspend-queue"}, exitEscalation,
			[]string{"fabrikam.com is refusing everyone", "✖ not verified: suspend-queue did not clear the problem",
				"ESCALATE to Postmaster of the destination domain", "answered 421 4.3.2 Service not available, too many connections"}},
		{"an overloaded destination without approval only proposes", []string{"diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "destination-overloaded"}, exitFindings,
			[]string{"Proposed relief: suspend-queue", "hosts:    ex01.lab.contoso.com, ex02.lab.contoso.com"}},
		{"a listed IP escalates to the deliverability owner", []string{"diagnose", "too many connections", "domain=fabrikam.com", "--lab", "ip-listed"}, exitEscalation,
			[]string{"Our sending IP 203.0.113.25 is listed on zen.spamhaus.org (127.0.0.3)", "ESCALATE to Deliverability owner",
				"Listed by CSS, see https://check.spamhaus.org/query/ip/203.0.113.25"}},
		{"a suspended queue is resumed", []string{"diagnose", "smtp-421", "domain=fabrikam.com", "--lab", "queue-suspended", "--approve", "resume-queue"}, exitFindings,
			[]string{"is suspended with 612 messages, and fabrikam.com accepts connections again", "✓ verified: resume-queue worked"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Its own directory: no ndrbot.yaml, and a fresh store, so no cooldown
			// carries over from another case's relief.
			t.Chdir(t.TempDir())
			r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, tc.args...)
			assert.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
			for _, w := range tc.want {
				assert.Contains(t, r.out, w)
			}
		})
	}
}

func TestDiagnose421JSONRecordsRollbackValue(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, []string{"NDRBOT_LAB_TIME_SCALE=3000"}, "", false, "diagnose", "4.3.2", "domain=fabrikam.com", "--lab", "concurrency-too-high",
		"--approve", "lower-per-domain-connections", "--json")
	require.Equal(t, exitFindings, r.code, r.err)
	var rep runReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &rep), r.out)
	assert.Equal(t, "smtp-421", rep.Playbook)
	require.Len(t, rep.Reliefs, 1)
	assert.Equal(t, "lower-per-domain-connections", rep.Reliefs[0].Relief)
	// The value to restore is in the preview, recorded before approval; the
	// relief's output is the value read back after the change.
	require.NotEmpty(t, rep.Proposals)
	assert.Contains(t, rep.Proposals[0].Preview, `"MaxPerDomainOutboundConnections":20`)
	assert.Contains(t, rep.Proposals[0].Rollback, "Set-TransportService -Identity <server> -MaxPerDomainOutboundConnections <value shown in the preview>")
	assert.Contains(t, rep.Reliefs[0].Output, `"MaxPerDomainOutboundConnections":5`)
}

func TestPlaybooksListHas421(t *testing.T) {
	t.Chdir(t.TempDir())
	r := bot(t, nil, "", false, "playbooks", "list")
	require.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "smtp-421")
	assert.Contains(t, r.out, "4.3.2, 421 4.3.2, too many connections, concurrent connections")

	r = bot(t, nil, "", false, "playbooks", "lint")
	assert.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "playbooks OK")
}

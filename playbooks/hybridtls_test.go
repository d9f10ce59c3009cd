package playbooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/playbooks"
)

// bind-send-cert is a compare-and-set: approval can come half an hour after
// the diagnosis, and if someone reran the Hybrid Configuration Wizard in
// between, the connector names a new value that the bot must not overwrite
// (nor later "roll back" to the stale one it read). The guard reads the
// connector right before the change and refuses unless it still names the
// previous value of the proposal.
func TestHybridTLSBindGuard(t *testing.T) {
	const connector = "Outbound to Office 365 - 5e6f7a8b"
	tests := []struct {
		name    string
		changed bool // the connector was changed between diagnosis and approval
		want    string
		refused string
	}{
		{name: "unchanged: runs", want: certRenewal},
		{name: "changed since the diagnosis: refused, nothing changed", changed: true, want: certWizard,
			refused: "bind-send-cert refused, nothing changed: send connector " + connector + " now names " + certWizard},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, eng, run, exec := diagnoseRenewal(t, "bind-send-cert")
			if tc.changed {
				setCertName(t, exec, "Set-SendConnector", connector, certWizard)
			}
			relieve(t, eng, run, "bind-send-cert", tc.refused)
			assert.Equal(t, tc.want, certName(t, exec, "Get-SendConnector", connector))
			var sets int
			for _, c := range l.Calls() {
				if c.Cmdlet == "Set-SendConnector" {
					sets++
				}
			}
			assert.Equal(t, 1, sets, "the test's own change, or the relief's")
		})
	}
}

// bind-frontend-cert's guard, frontend by frontend: a frontend changed since
// the diagnosis is left as it is and the relief stops there; the one before it
// was changed (the relief runs host by host).
func TestHybridTLSFrontendGuard(t *testing.T) {
	const (
		ex01 = `EX01\Default Frontend EX01`
		ex02 = `EX02\Default Frontend EX02`
	)
	tests := []struct {
		name    string
		changed string // the frontend changed between diagnosis and approval
		want    map[string]string
		refused string
	}{
		{name: "unchanged: both", want: map[string]string{ex01: certRenewal, ex02: certRenewal}},
		{name: "EX02 changed since: EX01 only", changed: ex02, want: map[string]string{ex01: certRenewal, ex02: certWizard},
			refused: "bind-frontend-cert refused, nothing changed: receive connector " + ex02 + " now names " + certWizard},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, eng, run, exec := diagnoseRenewal(t, "bind-frontend-cert")
			if tc.changed != "" {
				setCertName(t, exec, "Set-ReceiveConnector", tc.changed, certWizard)
			}
			relieve(t, eng, run, "bind-frontend-cert", tc.refused)
			for id, want := range tc.want {
				assert.Equal(t, want, certName(t, exec, "Get-ReceiveConnector", id), id)
			}
		})
	}
}

// The certificate names of cert-renewed-not-bound: the renewal installed, and
// what the Hybrid Configuration Wizard, rerun between diagnosis and approval,
// chose instead.
const (
	certRenewal = "<I>CN=R11, O=Let's Encrypt, C=US<S>CN=mail.contoso.com"
	certWizard  = "<I>CN=DigiCert Global G2 TLS RSA SHA256 2020 CA1, O=DigiCert Inc, C=US<S>CN=mail.contoso.com"
)

// setCertName is someone else changing a connector's TlsCertificateName.
func setCertName(t *testing.T, exec executors.Executor, cmdlet, identity, name string) {
	t.Helper()
	_, err := exec.Run(context.Background(), exec.Hosts()[0], executors.Action{Step: "test", Cmdlet: cmdlet,
		Args: []executors.Arg{{Name: "Identity", Value: identity}, {Name: "TlsCertificateName", Value: name}}})
	require.NoError(t, err)
}

// relieve runs relief, which refused says is refused with those words ("": runs).
func relieve(t *testing.T, eng *playbooks.Engine, run *playbooks.Run, relief, refused string) {
	t.Helper()
	res, err := eng.Relieve(context.Background(), run, relief)
	require.NoError(t, err)
	if refused != "" {
		assert.False(t, res.OK)
		assert.Contains(t, res.Error, refused)
	} else {
		assert.True(t, res.OK, res.Error)
	}
}

// diagnoseRenewal runs hybrid-tls on cert-renewed-not-bound and returns what a
// guard test needs, the relief proposed and not blocked.
func diagnoseRenewal(t *testing.T, relief string) (*lab.Lab, *playbooks.Engine, *playbooks.Run, executors.Executor) {
	t.Helper()
	l, err := lab.New("cert-renewed-not-bound", lab.Options{})
	require.NoError(t, err)
	targets := labTargetsFor(l)
	r := diagnoseRun(t, l, targets, builtin(t, "hybrid-tls"), map[string]any{"window": 24 * time.Hour, "expiry_warning": 720 * time.Hour}, 1e6)
	eng, run := r.eng, r.run
	p, ok := run.Proposal(relief)
	require.True(t, ok, "proposed: %v", reliefIDs(run.Proposals()))
	require.Empty(t, p.Blocked)
	exec, err := targets.Executor("exchange")
	require.NoError(t, err)
	return l, eng, run, exec
}

// certName reads the TlsCertificateName of one connector, as the lab now holds it.
func certName(t *testing.T, exec executors.Executor, cmdlet, identity string) any {
	t.Helper()
	host := exec.Hosts()[0]
	out, err := exec.Run(context.Background(), host, executors.Action{Step: "test", Cmdlet: cmdlet,
		Args: []executors.Arg{{Name: "Identity", Value: identity}}, Select: []string{"TlsCertificateName"}})
	require.NoError(t, err)
	rows, err := playbooks.Rows(host, out.Stdout)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	return rows[0]["TlsCertificateName"]
}

package exo

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/exo/exofake"
	"github.com/ndrbot/ndrbot/executors/internal/entra/entrafake"
)

// testSecret is distinctive so a leak is easy to find in any output.
const testSecret = "Xq7~EXO-S3CR3T-never-print"

// fastRetry keeps storms short (entrafake.FastRetry).
var fastRetry = entrafake.FastRetry()

type harness struct {
	fake *exofake.Server
	exec *Executor
	logs *entrafake.Logs
}

// target is an exo target for fake: Exchange Online is the real cloud host
// (outlook.office365.com …) reached through the fake's dialer, the authority is
// the fake's own https://127.0.0.1:port (authority_url, so no instance
// discovery), and its CA is trusted through ca_file.
func target(fake *exofake.Server) config.Target {
	return config.Target{Kind: config.KindEXO, TenantID: fake.Tenant, ClientID: fake.ClientID,
		ClientSecret: config.Secret(testSecret), CAFile: fake.CAFile(), AuthorityURL: fake.URL, Cloud: config.CloudGlobal}
}

func newHarness(t *testing.T, edit func(*config.Target), opts ...Option) *harness {
	t.Helper()
	fake := exofake.New(t)
	fake.ClientSecret = testSecret
	tg := target(fake)
	if edit != nil {
		edit(&tg)
	}
	logs := &entrafake.Logs{}
	all := append([]Option{WithLogger(logs.Logger()), WithDialer(fake.DialContext), WithRetryPolicy(fastRetry),
		withRand(func() float64 { return 0.5 })}, opts...)
	e, err := New("exo", tg, all...)
	require.NoError(t, err)
	return &harness{fake: fake, exec: e, logs: logs}
}

func (h *harness) run(t *testing.T, cmdlet string, args []executors.Arg, sel []string, timeout time.Duration) (executors.Output, error) {
	t.Helper()
	return h.exec.Run(context.Background(), h.exec.Hosts()[0], executors.Action{Step: "test", Cmdlet: cmdlet, Args: args, Select: sel, Timeout: timeout})
}

// fixture reads testdata/name: a JSON array of objects, or one object.
func fixture(t *testing.T, name string) []json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	b = bytes.TrimSpace(b)
	if b[0] == '{' {
		return []json.RawMessage{b}
	}
	var items []json.RawMessage
	require.NoError(t, json.Unmarshal(b, &items))
	return items
}

func rowsOf(t *testing.T, out executors.Output) []map[string]any {
	t.Helper()
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(out.Stdout, &rows), string(out.Stdout))
	return rows
}

func arg(name string, v any) executors.Arg { return executors.Arg{Name: name, Value: v} }

package graph

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
	"github.com/ndrbot/ndrbot/executors/internal/entra/entrafake"
)

// testSecret is distinctive so a leak is easy to find in any output.
const testSecret = "Zq8~S3CR3T-value-NEVER-print"

// fastRetry keeps storms short (entrafake.FastRetry).
var fastRetry = RetryPolicy(entrafake.FastRetry())

// harness is one executor wired to one fake.
type harness struct {
	fake *graphfake.Server
	exec *Executor
	logs *entrafake.Logs
}

// target is a graph target for fake: Graph and the authority are the fake's own
// https://127.0.0.1:port (the graph_url / authority_url overrides), and its CA is
// trusted through ca_file.
func target(fake *graphfake.Server) config.Target {
	return config.Target{
		Kind: config.KindGraph, TenantID: fake.Tenant, ClientID: fake.ClientID,
		ClientSecret: config.Secret(fake.ClientSecret), CAFile: fake.CAFile(),
		GraphURL: fake.URL, AuthorityURL: fake.URL, Cloud: config.CloudGlobal,
	}
}

func newHarness(t *testing.T, fakeOpts []graphfake.Option, edit func(*config.Target), opts ...Option) *harness {
	t.Helper()
	fake := graphfake.New(t, append([]graphfake.Option{graphfake.WithClientSecret(testSecret)}, fakeOpts...)...)
	tg := target(fake)
	if edit != nil {
		edit(&tg)
	}
	logs := &entrafake.Logs{}
	all := append([]Option{WithLogger(logs.Logger()), WithRetryPolicy(fastRetry), withRand(func() float64 { return 0.5 })}, opts...)
	e, err := New("m365", tg, all...)
	require.NoError(t, err)
	return &harness{fake: fake, exec: e, logs: logs}
}

func (h *harness) run(t *testing.T, check string, params map[string]any, timeout time.Duration) (executors.Output, error) {
	t.Helper()
	return h.exec.Run(context.Background(), h.exec.Hosts()[0], executors.Action{Step: "test", Check: check, Params: params, Timeout: timeout})
}

// rows decodes Output.Stdout into v.
func decode(t *testing.T, out executors.Output, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(out.Stdout, v), "stdout: %s", out.Stdout)
}

// clock is a settable clock shared by the fake and the executor.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func subscriptionModel(id, resource string, expires time.Time) models.Subscriptionable {
	s := models.NewSubscription()
	s.SetId(&id)
	s.SetResource(&resource)
	s.SetExpirationDateTime(&expires)
	return s
}

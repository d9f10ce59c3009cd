package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
)

// The Client other packages use: the same credential, endpoints and adapter as the
// executor, one attempt per request.
func TestClient(t *testing.T) {
	t.Parallel()
	fake := graphfake.New(t, graphfake.WithClientSecret(testSecret))
	tg := target(fake)
	c, err := NewClient("m365", tg)
	require.NoError(t, err)
	assert.Empty(t, fake.Requests(), "NewClient contacts nobody")
	ep := c.Endpoints()
	assert.Equal(t, fake.URL+"/v1.0", ep.GraphURL)

	get := func(path string) *abs.RequestInformation {
		u, err := url.Parse(ep.GraphURL + path)
		require.NoError(t, err)
		ri := abs.NewRequestInformation()
		ri.Method = abs.GET
		ri.SetUri(*u)
		ri.Headers.TryAdd("Accept", "application/json")
		return ri
	}
	body, err := c.Send(context.Background(), get("/subscriptions"))
	require.NoError(t, err)
	assert.Contains(t, string(body), `"value"`)
	reqs := fake.GraphRequests(http.MethodGet, "/subscriptions")
	require.Len(t, reqs, 1)
	assert.Regexp(t, `^Bearer fake-access-token-`, reqs[0].Header.Get("Authorization"))
	assert.NotEmpty(t, reqs[0].Header.Get("client-request-id"), "the telemetry middleware ran")

	// One attempt: retrying is the caller's.
	fake.AddFault(graphfake.Fault{Path: "/subscriptions", Times: 1})
	_, err = c.Send(context.Background(), get("/subscriptions"))
	var oe *odataerrors.ODataError
	require.True(t, errors.As(err, &oe), "%v", err)
	assert.Equal(t, http.StatusServiceUnavailable, oe.ResponseStatusCode)
	assert.Len(t, fake.GraphRequests(http.MethodGet, "/subscriptions"), 2)

	adapter, err := c.Adapter()
	require.NoError(t, err)
	assert.Equal(t, ep.GraphURL, adapter.GetBaseUrl())
	again, err := c.Adapter()
	require.NoError(t, err)
	assert.Same(t, adapter, again, "the same adapter while the credential is unchanged")

	_, err = c.CheckLink(ep.GraphURL + "/users?$skiptoken=x")
	require.NoError(t, err)
	_, err = c.CheckLink("https://evil.example/v1.0/users")
	assert.ErrorContains(t, err, "not to Graph at 127.0.0.1")
	_, err = c.CheckLink("http://" + ep.GraphHost + "/v1.0/users")
	assert.ErrorContains(t, err, "not to Graph", "the scheme counts too")

	printed := fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
	assert.NotContains(t, printed, testSecret)
	assert.Len(t, fake.TokenRequests(), 1, "one token for all")
}

func TestNewClientRejects(t *testing.T) {
	t.Parallel()
	fake := graphfake.New(t)
	for name, edit := range map[string]func(*config.Target){
		"kind":            func(t *config.Target) { t.Kind = "winrm" },
		"no tenant":       func(t *config.Target) { t.TenantID = "" },
		"no credential":   func(t *config.Target) { t.ClientSecret = "" },
		"ca and insecure": func(t *config.Target) { t.InsecureSkipVerify = true },
		"wrong password": func(t *config.Target) {
			t.ClientSecret, t.CertificateFile, t.CertificatePassword = "", "testdata/app-encrypted.pem", "not-the-PASSWORD"
		},
	} {
		tg := target(fake)
		edit(&tg)
		_, err := NewClient("m365", tg)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), `graph target "m365": `, name)
		assert.NotContains(t, err.Error(), "not-the-PASSWORD", name)
	}
	assert.Empty(t, fake.Requests())
}

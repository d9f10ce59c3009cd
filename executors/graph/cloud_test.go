package graph

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/graph/graphfake"
)

func TestResolveEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    config.Target
		want Endpoints
	}{
		{"default is global", config.Target{}, Endpoints{Cloud: "global", GraphURL: "https://graph.microsoft.com/v1.0", GraphHost: "graph.microsoft.com",
			AuthorityURL: "https://login.microsoftonline.com/", Scope: "https://graph.microsoft.com/.default", InstanceDiscovery: true}},
		{"usgov (GCC High)", config.Target{Cloud: "usgov"}, Endpoints{Cloud: "usgov", GraphURL: "https://graph.microsoft.us/v1.0", GraphHost: "graph.microsoft.us",
			AuthorityURL: "https://login.microsoftonline.us/", Scope: "https://graph.microsoft.us/.default"}},
		{"usgovdod", config.Target{Cloud: "usgovdod"}, Endpoints{Cloud: "usgovdod", GraphURL: "https://dod-graph.microsoft.us/v1.0", GraphHost: "dod-graph.microsoft.us",
			AuthorityURL: "https://login.microsoftonline.us/", Scope: "https://dod-graph.microsoft.us/.default"}},
		{"china (21Vianet)", config.Target{Cloud: "china"}, Endpoints{Cloud: "china", GraphURL: "https://microsoftgraph.chinacloudapi.cn/v1.0", GraphHost: "microsoftgraph.chinacloudapi.cn",
			AuthorityURL: "https://login.chinacloudapi.cn/", Scope: "https://microsoftgraph.chinacloudapi.cn/.default"}},
		{"graph_url override keeps the authority", config.Target{Cloud: "usgov", GraphURL: "https://graph-proxy.contoso.com:8443"},
			Endpoints{Cloud: "usgov", GraphURL: "https://graph-proxy.contoso.com:8443/v1.0", GraphHost: "graph-proxy.contoso.com",
				AuthorityURL: "https://login.microsoftonline.us/", Scope: "https://graph-proxy.contoso.com:8443/.default"}},
		{"graph_url with a version", config.Target{GraphURL: "https://graph.microsoft.com/beta/"},
			Endpoints{Cloud: "global", GraphURL: "https://graph.microsoft.com/beta", GraphHost: "graph.microsoft.com",
				AuthorityURL: "https://login.microsoftonline.com/", Scope: "https://graph.microsoft.com/.default", InstanceDiscovery: true}},
		{"authority_url override turns discovery off", config.Target{AuthorityURL: "https://login.contoso-proxy.example"},
			Endpoints{Cloud: "global", GraphURL: "https://graph.microsoft.com/v1.0", GraphHost: "graph.microsoft.com",
				AuthorityURL: "https://login.contoso-proxy.example/", Scope: "https://graph.microsoft.com/.default"}},
		{"plain http to localhost", config.Target{GraphURL: "http://localhost:8080"},
			Endpoints{Cloud: "global", GraphURL: "http://localhost:8080/v1.0", GraphHost: "localhost",
				AuthorityURL: "https://login.microsoftonline.com/", Scope: "http://localhost:8080/.default", InstanceDiscovery: true}},
	}
	for _, tt := range tests {
		got, err := ResolveEndpoints(tt.t)
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
	for _, bad := range []config.Target{
		{Cloud: "germany"},
		{GraphURL: "http://graph.contoso.com"},
		{AuthorityURL: "http://localhost:8443"},
		{AuthorityURL: "https://login.microsoftonline.us/contoso.onmicrosoft.com"},
		{GraphURL: "https://user:pw@graph.microsoft.com"},
	} {
		_, err := ResolveEndpoints(bad)
		assert.Error(t, err, "%+v", bad)
	}
}

func TestCloudNamesMatchConfig(t *testing.T) {
	t.Parallel()
	for _, name := range config.GraphClouds() {
		_, ok := CloudByName(name)
		assert.True(t, ok, name)
	}
	assert.Len(t, clouds, len(config.GraphClouds()))
}

// The cloud key alone sends token requests to the cloud's authority and Graph
// requests to its Graph host: a dialer delivers every host name to the fake, which
// answers under those names (TLS verifies them).
func TestNationalCloudRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cloud, login, graph string
	}{
		{config.CloudUSGov, "login.microsoftonline.us", "graph.microsoft.us"},
		{config.CloudUSGovDoD, "login.microsoftonline.us", "dod-graph.microsoft.us"},
		{config.CloudChina, "login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"},
		{config.CloudGlobal, "login.microsoftonline.com", "graph.microsoft.com"},
	}
	for _, tt := range tests {
		t.Run(tt.cloud, func(t *testing.T) {
			t.Parallel()
			fake := graphfake.New(t, graphfake.WithClientSecret(testSecret))
			require.NoError(t, fake.SetIssues(issuesPage(t)))
			tg := target(fake)
			tg.Cloud, tg.GraphURL, tg.AuthorityURL = tt.cloud, "", ""
			e, err := New("m365", tg, WithDialer(fake.DialContext), WithRetryPolicy(fastRetry))
			require.NoError(t, err)
			_, err = e.Run(context.Background(), e.Hosts()[0], executors.Action{Step: "health", Check: CheckServiceHealth, Timeout: 10 * time.Second})
			require.NoError(t, err)

			tokens := fake.TokenRequests()
			require.Len(t, tokens, 1)
			assert.Equal(t, tt.login, tokens[0].Host)
			assert.Equal(t, "/"+fake.Tenant+"/oauth2/v2.0/token", tokens[0].Path)
			assert.Equal(t, "https://"+tt.graph+"/.default", tokens[0].Scope())
			graphReqs := fake.GraphRequests("", "/")
			require.NotEmpty(t, graphReqs)
			for _, r := range graphReqs {
				assert.Equal(t, tt.graph, r.Host, "%s %s", r.Method, r.Path)
				assert.Regexp(t, `^Bearer fake-access-token-`, r.Header.Get("Authorization"))
			}
			for _, r := range fake.Requests() {
				assert.Contains(t, []string{tt.login, tt.graph}, r.Host, "%s %s went elsewhere", r.Method, r.Path)
			}
		})
	}
}

// The graph_url / authority_url overrides are what the other tests use: check that
// the requests go there and carry the token, over https only.
func TestOverrideRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, nil)
	_, err := h.run(t, CheckSubscriptions, nil, 10*time.Second)
	require.NoError(t, err)
	for _, r := range h.fake.Requests() {
		assert.Equal(t, h.fake.Addr(), r.Host)
	}
	require.Len(t, h.fake.TokenRequests(), 1)
	assert.Equal(t, h.fake.URL+"/.default", h.fake.TokenRequests()[0].Scope())
	assert.Equal(t, http.MethodGet, h.fake.GraphRequests("", "/subscriptions")[0].Method)
	assert.Equal(t, Endpoints{Cloud: "global", GraphURL: h.fake.URL + "/v1.0", GraphHost: "127.0.0.1", AuthorityURL: h.fake.URL + "/",
		Scope: h.fake.URL + "/.default"}, h.exec.Endpoints())
}

// SSL_CERT_FILE is honoured: Go reads it into the system roots, which the executor's
// transport keeps. Checked in a child process, where no test has loaded the system
// roots yet; without the variable the same run fails on the unknown CA.
func TestSSLCertFileHonoured(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"with", "without"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSSLCertFileChild$", "-test.v")
		cmd.Env = append(os.Environ(), "GRAPH_SSL_CHILD="+mode)
		out, err := cmd.CombinedOutput()
		if mode == "with" {
			assert.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "child: ok")
		} else {
			assert.Error(t, err, "%s", out)
			assert.Contains(t, string(out), "certificate signed by unknown authority")
		}
	}
}

func TestSSLCertFileChild(t *testing.T) {
	mode := os.Getenv("GRAPH_SSL_CHILD")
	if mode == "" {
		t.Skip("run by TestSSLCertFileHonoured")
	}
	fake := graphfake.New(t, graphfake.WithClientSecret(testSecret))
	if mode == "with" {
		t.Setenv("SSL_CERT_FILE", fake.CAFile())
	} else {
		t.Setenv("SSL_CERT_FILE", os.DevNull)
	}
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	tg := target(fake)
	tg.CAFile = "" // the standard roots only
	e, err := New("m365", tg, WithRetryPolicy(fastRetry))
	require.NoError(t, err)
	_, err = e.Run(context.Background(), e.Hosts()[0], executors.Action{Step: "s", Check: CheckSubscriptions, Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Log("child: ok")
}

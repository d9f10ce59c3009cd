package winrmfake_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	wsman "github.com/masterzen/winrm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/executors/winrm"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
)

// executor is a real winrm executor for the fake at srv.
func executor(t *testing.T, srv *winrmfake.Server) *winrm.Executor {
	t.Helper()
	e, err := winrm.New("exchange", config.Target{
		Kind: "winrm", Endpoints: []string{srv.URL()}, Auth: "basic", AllowUnencrypted: true,
		Username: winrmfake.User, Password: winrmfake.Password, OperationTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	return e
}

func TestLabAnswersAsTheMappedHost(t *testing.T) {
	l, err := lab.New("overloaded-queue", lab.Options{})
	require.NoError(t, err)
	exchange := l.Target("exchange", "winrm", nil)
	ex01 := winrmfake.New(t, winrmfake.Lab(t, exchange, "ex01.lab.contoso.com"))
	ex02 := winrmfake.New(t, winrmfake.Lab(t, exchange, "ex02.lab.contoso.com"))

	queues := func(srv *winrmfake.Server) map[string]float64 {
		t.Helper()
		e := executor(t, srv)
		out, err := e.Run(t.Context(), e.Hosts()[0], executors.Action{Step: "queues", Cmdlet: "Get-Queue",
			Args: []executors.Arg{{Name: "ResultSize", Value: "Unlimited"}}, Select: []string{"Identity", "MessageCount"}})
		require.NoError(t, err)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal(out.Stdout, &rows), "%s", out.Stdout)
		counts := map[string]float64{}
		for _, r := range rows {
			counts[r["Identity"].(string)] = r["MessageCount"].(float64)
		}
		return counts
	}
	assert.Equal(t, 1523.0, queues(ex01)[`EX01\7`])
	assert.Equal(t, 640.0, queues(ex02)[`EX02\7`])

	// A relief through one server changes the one organisation.
	e := executor(t, ex01)
	_, err = e.Run(t.Context(), e.Hosts()[0], executors.Action{Step: "restart", Cmdlet: "Restart-Service",
		Args: []executors.Arg{{Name: "Name", Value: "MSExchangeTransport"}}})
	require.NoError(t, err)
	assert.Equal(t, 3.0, queues(ex01)[`EX01\7`])

	var hosts []string
	for _, c := range l.Calls() {
		hosts = append(hosts, c.Host+" "+c.Cmdlet)
	}
	assert.Equal(t, []string{
		"ex01.lab.contoso.com Get-Queue", "ex02.lab.contoso.com Get-Queue",
		"ex01.lab.contoso.com Restart-Service", "ex01.lab.contoso.com Get-Queue",
	}, hosts)
	assert.Len(t, ex01.Calls(), 3)
	assert.Len(t, ex02.Calls(), 1)
	assert.Zero(t, ex01.OpenShells()+ex02.OpenShells())
}

func TestLabErrorsExitOne(t *testing.T) {
	l, err := lab.New("healthy", lab.Options{})
	require.NoError(t, err)
	srv := winrmfake.New(t, winrmfake.Lab(t, l.Target("exchange", "winrm", nil), "ex01.lab.contoso.com"))
	e := executor(t, srv)

	out, err := e.Run(t.Context(), e.Hosts()[0], executors.Action{Step: "mailbox", Cmdlet: "Get-Mailbox",
		Args: []executors.Arg{{Name: "Identity", Value: "nobody@contoso.com"}}})

	require.ErrorIs(t, err, executors.ErrExit)
	assert.Equal(t, 1, out.ExitCode)
	assert.Contains(t, out.Stderr, "object 'nobody@contoso.com' couldn't be found")
	call := srv.Calls()[0]
	assert.Equal(t, "127.0.0.1", call.Host)
	assert.Equal(t, "Get-Mailbox", call.Params["@cmdlet"])
	assert.Equal(t, []any{map[string]any{"n": "Identity", "v": "nobody@contoso.com"}}, call.Params["@args"])
	assert.Equal(t, []executors.Arg{{Name: "Identity", Value: "nobody@contoso.com"}}, l.Calls()[0].Args)
}

func TestServerLogsRequestsItRefuses(t *testing.T) {
	srv := winrmfake.New(t, func(winrmfake.Call) winrmfake.Reply { return winrmfake.Reply{} })
	assert.Empty(t, srv.Log())

	resp, err := http.Post(srv.URL(), "application/soap+xml;charset=UTF-8", strings.NewReader("<s:Envelope/>"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, []string{"Unauthorized"}, srv.Log())
	assert.Empty(t, srv.Calls())
}

func TestParseCommandLine(t *testing.T) {
	encode := func(script string) string { return wsman.Powershell(script) }
	blob := base64.StdEncoding.EncodeToString([]byte(`{"sender":"o'brien@contoso.com"}`))
	prelude := "$ErrorActionPreference = 'Stop'\n$P = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('" + blob + "')) | ConvertFrom-Json\n"

	call, err := winrmfake.ParseCommandLine(encode(prelude + "Get-Mailbox -Identity $P.sender"))
	require.NoError(t, err)
	assert.Equal(t, "Get-Mailbox -Identity $P.sender", call.Script)
	assert.Equal(t, `{"sender":"o'brien@contoso.com"}`, string(call.ParamsJSON))
	assert.Equal(t, map[string]any{"sender": "o'brien@contoso.com"}, call.Params)
	assert.Equal(t, "$ProgressPreference = 'SilentlyContinue';"+prelude+"Get-Mailbox -Identity $P.sender", call.Raw)

	utf16le := func(s string) string {
		var b []byte
		for _, u := range utf16.Encode([]rune(s)) {
			b = append(b, byte(u), byte(u>>8))
		}
		return "powershell.exe -EncodedCommand " + base64.StdEncoding.EncodeToString(b)
	}
	for name, tc := range map[string]struct{ line, want string }{
		"not encoded":       {"powershell.exe -Command Get-Queue", "not an encoded PowerShell command"},
		"bad base64":        {"powershell.exe -EncodedCommand ***", "bad -EncodedCommand"},
		"no literal":        {encode("Get-Queue"), "script has no parameter literal"},
		"literal not plain": {utf16le("$P = [Convert]::FromBase64String('ab$(x)')\nGet-Queue"), "not plain base64"},
		"not an object":     {utf16le("$P = [Convert]::FromBase64String('" + base64.StdEncoding.EncodeToString([]byte("null")) + "')\nGet-Queue"), "not a JSON object"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := winrmfake.ParseCommandLine(tc.line)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestFaultBodies(t *testing.T) {
	for _, f := range []winrmfake.Fault{winrmfake.FaultQuota, winrmfake.FaultAccessDenied, winrmfake.FaultInternal, winrmfake.FaultTimedOut} {
		assert.Contains(t, f.Body(), "<s:Fault", f)
	}
	assert.Empty(t, winrmfake.Fault("nope").Body())
	assert.NotContains(t, winrmfake.SignalResponse("uuid:1"), "Fault")
}

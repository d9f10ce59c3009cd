package winrm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	wsman "github.com/masterzen/winrm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
)

const (
	host             = "ex01.contoso.com"
	exchangePreamble = "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn"
	queueScript      = `Get-Queue | Select-Object @{n='Identity';e={"$($_.Identity)"}}, MessageCount | ConvertTo-Json`
)

// fakeTarget is a winrm target for the fake: basic over plain http, which only
// works because allow_unencrypted is set. Its real-looking host name reaches the
// fake through the fake's dialer (see executor).
func fakeTarget(mods ...func(*config.Target)) config.Target {
	t := config.Target{
		Kind:             "winrm",
		Endpoints:        []string{"http://" + host + ":5985/wsman"},
		Auth:             "basic",
		Username:         winrmfake.User,
		Password:         winrmfake.Password,
		AllowUnencrypted: true,
		Preamble:         exchangePreamble,
		OperationTimeout: 5 * time.Second,
	}
	for _, m := range mods {
		m(&t)
	}
	return t
}

// executor is an executor of fakeTarget whose every connection goes to f.
func executor(t *testing.T, f *winrmfake.Server, mods ...func(*config.Target)) *Executor {
	t.Helper()
	e, err := New("exchange", fakeTarget(mods...), WithDialer(f.DialContext), WithCleanupTimeout(2*time.Second))
	require.NoError(t, err)
	return e
}

func returns(r winrmfake.Reply) func(winrmfake.Call) winrmfake.Reply {
	return func(winrmfake.Call) winrmfake.Reply { return r }
}

func lastCall(t *testing.T, f *winrmfake.Server) winrmfake.Call {
	t.Helper()
	calls := f.Calls()
	require.NotEmpty(t, calls, "no command was run")
	return calls[len(calls)-1]
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

func queues() executors.Action {
	return executors.Action{Step: "queues", Script: queueScript, Timeout: 10 * time.Second}
}

// requireClosed checks that every shell the fake opened was deleted and that the
// command was signalled.
func requireClosed(t *testing.T, f *winrmfake.Server) {
	t.Helper()
	log := f.Log()
	require.Zero(t, f.OpenShells(), "shells left open; log: %v", log)
	var signalled bool
	for _, l := range log {
		signalled = signalled || strings.HasPrefix(l, "Signal ")
	}
	require.True(t, signalled, "no Signal; log: %v", log)
}

func TestRunResults(t *testing.T) {
	getQueue := readTestdata(t, "get-queue.json")
	progress := readTestdata(t, "stderr-progress.clixml")
	mailboxError := readTestdata(t, "stderr-error.clixml")
	big := strings.Repeat(getQueue, 40) // ~40 KiB, well under the cap

	tests := []struct {
		name       string
		reply      winrmfake.Reply
		chunk      int
		wantStdout string
		wantStderr string
		wantExit   int
		wantErr    string // the whole message; empty: no error
	}{
		{
			name:       "JSON on stdout, a progress record on stderr",
			reply:      winrmfake.Reply{Stdout: getQueue, Stderr: progress},
			wantStdout: getQueue,
		},
		{
			name:       "exit code with CLIXML error records",
			reply:      winrmfake.Reply{Stderr: mailboxError, Exit: 3},
			wantStderr: "Get-Mailbox : The operation couldn't be performed because object 'alice@contoso.com' couldn't be found\non 'DC01.contoso.com'.",
			wantExit:   3,
			wantErr: "winrm ex01.contoso.com: queues: exit 3: Get-Mailbox : The operation couldn't be performed because object " +
				"'alice@contoso.com' couldn't be found / on 'DC01.contoso.com'. / At line:4 char:1",
		},
		{
			name:       "errors on stderr with exit 0",
			reply:      winrmfake.Reply{Stdout: "[]", Stderr: "'nslookup' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"},
			wantStdout: "[]",
			wantStderr: "'nslookup' is not recognized as an internal or external command,\noperable program or batch file.",
			wantErr: "winrm ex01.contoso.com: queues: exit 0 with errors: 'nslookup' is not recognized as an internal or " +
				"external command, / operable program or batch file.",
		},
		{
			name:     "non-zero exit without stderr",
			reply:    winrmfake.Reply{Stderr: progress, Exit: 1},
			wantExit: 1,
			wantErr:  "winrm ex01.contoso.com: queues: exit 1",
		},
		{
			name:       "output spread over many Receives",
			reply:      winrmfake.Reply{Stdout: big},
			chunk:      1024,
			wantStdout: big,
		},
		{
			name:       "OperationTimeout faults are polled again",
			reply:      winrmfake.Reply{Stdout: getQueue, TimedOutPolls: 2},
			wantStdout: getQueue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := winrmfake.New(t, returns(tt.reply), winrmfake.WithChunk(tt.chunk))
			e := executor(t, f)

			out, err := e.Run(t.Context(), host, queues())

			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tt.wantErr)
				require.ErrorIs(t, err, executors.ErrExit)
			}
			assert.Equal(t, host, out.Host)
			assert.Equal(t, tt.wantStdout, string(out.Stdout))
			assert.True(t, strings.HasPrefix(out.Stderr, tt.wantStderr), "stderr %q", out.Stderr)
			assert.NotContains(t, out.Stderr, "<S ", "CLIXML markup left in stderr")
			assert.Equal(t, tt.wantExit, out.ExitCode)
			assert.False(t, out.Truncated)
			assert.Positive(t, out.Duration)

			log := f.Log()
			assert.Zero(t, f.OpenShells(), "shell left open")
			require.GreaterOrEqual(t, len(log), 5)
			assert.True(t, strings.HasPrefix(log[0], "Create "), "log %v", log)
			assert.True(t, strings.HasPrefix(log[1], "Command "), "log %v", log)
			assert.True(t, strings.HasPrefix(log[len(log)-2], "Signal "), "log %v", log)
			assert.True(t, strings.HasPrefix(log[len(log)-1], "Delete "), "log %v", log)
		})
	}
}

// TestRunParamsAreData sends hostile parameter values and checks, on the server
// side, that they arrive byte for byte as data and never as script text.
func TestRunParamsAreData(t *testing.T) {
	hostile := []struct{ name, value string }{
		{"single quotes", `O'Brien'); Remove-Item C:\ -Recurse -Force; ('`},
		{"double quotes and subexpression", `"; $(Stop-Service MSExchangeTransport) "`},
		{"backticks", "`$env:USERNAME` `n `0"},
		{"semicolon and pipe", "alice@contoso.com; Get-Process | Stop-Process"},
		{"newlines", "line1\nStop-Service MSExchangeTransport\r\nline3"},
		{"unicode", "Zoë 日本 🚀"},
		{"CDATA end", "]]></rsp:Command><rsp:Command>calc.exe"},
		{"here-string", "'@\nInvoke-Expression whoami\n@'"},
		{"control characters", "a\x00b\x1bc\u2028d"},
	}

	// The script for harmless parameters, with the literal cut out, is the
	// template every run must match: only the base64 literal may vary.
	benignParams := map[string]any{"sender": "alice@contoso.com"}
	benign, err := Script(exchangePreamble, queueScript, benignParams)
	require.NoError(t, err)
	blob, err := json.Marshal(benignParams)
	require.NoError(t, err)
	template := strings.Replace(benign, base64.StdEncoding.EncodeToString(blob), "", 1)
	require.Equal(t, "$ErrorActionPreference = 'Stop'\n"+
		"$P = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('')) | ConvertFrom-Json\n"+
		exchangePreamble+"\n"+
		queueScript, template)

	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			// The fake's "script" echoes $P back as JSON, as ConvertTo-Json would.
			f := winrmfake.New(t, func(c winrmfake.Call) winrmfake.Reply { return winrmfake.Reply{Stdout: string(c.ParamsJSON)} })
			e := executor(t, f)
			params := map[string]any{
				"sender": h.value,
				"queues": []any{`EX01\3`, h.value},
				"limit":  1000,
				"dryRun": true,
			}
			a := queues()
			a.Params = params

			out, err := e.Run(t.Context(), host, a)
			require.NoError(t, err)

			call := lastCall(t, f)
			want, err := json.Marshal(params)
			require.NoError(t, err)
			assert.Equal(t, want, call.ParamsJSON, "parameters changed on the way")
			assert.Equal(t, h.value, call.Params["sender"])
			assert.Equal(t, want, out.Stdout)

			assert.NotContains(t, call.Raw, h.value, "a value leaked into the script")
			assert.Equal(t, exchangePreamble+"\n"+queueScript, call.Script, "script after the prelude")
			assert.Equal(t, "$ProgressPreference = 'SilentlyContinue';"+template,
				strings.Replace(call.Raw, base64.StdEncoding.EncodeToString(call.ParamsJSON), "", 1), "script differs from the template")
		})
	}
}

func TestRunFailures(t *testing.T) {
	tests := []struct {
		name    string
		opts    []winrmfake.Option
		reply   winrmfake.Reply // default: "[]" on stdout
		mod     func(*config.Target)
		host    string
		action  func(*executors.Action)
		wantIs  error
		wantMsg []string
		noCalls bool // nothing may reach the server
	}{
		{
			name:    "wrong password",
			mod:     func(c *config.Target) { c.Password = "S3cr3t-Wr0ng" },
			wantIs:  executors.ErrAuth,
			wantMsg: []string{"winrm ex01.contoso.com: queues: opening shell: authentication failed: HTTP 401"},
		},
		{
			name: "shell quota exceeded",
			opts: []winrmfake.Option{winrmfake.RefuseShells(winrmfake.FaultQuota)},
			wantMsg: []string{
				"winrm ex01.contoso.com: queues: opening shell: wsman fault w:QuotaLimit (2150859173): ",
				"maximum number of concurrent shells for this user has been exceeded",
			},
		},
		{
			name:    "access denied",
			opts:    []winrmfake.Option{winrmfake.RefuseShells(winrmfake.FaultAccessDenied)},
			wantIs:  executors.ErrAuth,
			wantMsg: []string{"opening shell: wsman fault w:AccessDenied (5): Access is denied."},
		},
		{
			name:    "command refused",
			reply:   winrmfake.Reply{Fault: winrmfake.FaultInternal},
			wantMsg: []string{"queues: starting command: wsman fault w:InternalError", "The filename or extension is too long."},
		},
		{
			name:    "unknown host",
			host:    "ex99.contoso.com",
			wantMsg: []string{`winrm ex99.contoso.com: queues: not an endpoint of target "exchange" (ex01.contoso.com)`},
			noCalls: true,
		},
		{
			name:    "command line too long",
			action:  func(a *executors.Action) { a.Script = strings.Repeat("Get-Queue | Out-Null\n", 150) },
			wantIs:  executors.ErrUnsupported,
			wantMsg: []string{"the encoded command is", "over the 8000 powershell.exe accepts"},
			noCalls: true,
		},
		{
			name:    "parameters that are not JSON",
			action:  func(a *executors.Action) { a.Params = map[string]any{"bad": make(chan int)} },
			wantMsg: []string{"encoding parameters"},
			noCalls: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := winrmfake.New(t, returns(cmp.Or(tt.reply, winrmfake.Reply{Stdout: "[]"})), tt.opts...)
			mods := []func(*config.Target){}
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			e := executor(t, f, mods...)
			a := queues()
			if tt.action != nil {
				tt.action(&a)
			}
			h := host
			if tt.host != "" {
				h = tt.host
			}

			out, err := e.Run(t.Context(), h, a)

			require.Error(t, err)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				assert.Contains(t, err.Error(), m)
			}
			assert.NotContains(t, err.Error(), "S3cr3t-Wr0ng")
			assert.NotContains(t, err.Error(), winrmfake.Password)
			assert.Equal(t, -1, out.ExitCode, "no exit code without a finished command")
			log := f.Log()
			assert.Zero(t, f.OpenShells(), "shell left open; log %v", log)
			if tt.noCalls {
				assert.Empty(t, log)
			}
		})
	}
}

func TestRunQuotaFaultIsTyped(t *testing.T) {
	f := winrmfake.New(t, returns(winrmfake.Reply{}), winrmfake.RefuseShells(winrmfake.FaultQuota))
	_, err := executor(t, f).Run(t.Context(), host, queues())

	var fault *FaultError
	require.ErrorAs(t, err, &fault)
	assert.Equal(t, "w:QuotaLimit", fault.Subcode)
	assert.Equal(t, "2150859173", fault.Code)
	assert.Equal(t, "ex01.contoso.com", fault.Machine)
}

func TestRunUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	e, err := New("exchange", config.Target{
		Endpoints: []string{"http://" + addr + "/wsman"},
		Auth:      "basic", Username: "svc", Password: "pw", AllowUnencrypted: true,
	})
	require.NoError(t, err)
	_, err = e.Run(t.Context(), "127.0.0.1", queues())
	require.ErrorIs(t, err, executors.ErrUnreachable)
	assert.Contains(t, err.Error(), "winrm 127.0.0.1: queues: opening shell: unreachable")
}

// TestRunTimeout runs a command that never finishes: the run must end at its
// deadline, well before the 5 s the server would hold the Receive, and the
// shell must still be signalled and deleted.
func TestRunTimeout(t *testing.T) {
	tests := []struct {
		name   string
		run    func(e *Executor) (executors.Output, error)
		wantIs error
		notIs  error
		msg    string
	}{
		{
			name: "action timeout",
			run: func(e *Executor) (executors.Output, error) {
				a := queues()
				a.Timeout = 300 * time.Millisecond
				return e.Run(context.Background(), host, a)
			},
			wantIs: executors.ErrTimeout,
			msg:    "winrm ex01.contoso.com: queues: timed out after",
		},
		{
			name: "caller's deadline",
			run: func(e *Executor) (executors.Output, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				return e.Run(ctx, host, queues())
			},
			wantIs: context.DeadlineExceeded,
			msg:    "timed out after",
		},
		{
			name: "caller cancels",
			run: func(e *Executor) (executors.Output, error) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(300*time.Millisecond, cancel)
				return e.Run(ctx, host, queues())
			},
			wantIs: context.Canceled,
			notIs:  executors.ErrTimeout,
			msg:    "winrm ex01.contoso.com: queues: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := winrmfake.New(t, returns(winrmfake.Reply{Hang: true}))
			e := executor(t, f) // OperationTimeout 5s: the fake long-polls that long

			start := time.Now()
			out, err := tt.run(e)
			elapsed := time.Since(start)

			require.ErrorIs(t, err, tt.wantIs)
			if tt.notIs != nil {
				require.NotErrorIs(t, err, tt.notIs)
			}
			assert.Contains(t, err.Error(), tt.msg)
			assert.Less(t, elapsed, 3*time.Second, "the run outlived its deadline")
			assert.Equal(t, -1, out.ExitCode)
			requireClosed(t, f)
		})
	}
}

func TestRunConcurrencyCap(t *testing.T) {
	f := winrmfake.New(t, returns(winrmfake.Reply{Stdout: "[]", Delay: 50 * time.Millisecond}))
	e := executor(t, f, func(c *config.Target) { c.MaxConcurrency = 2 })

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := e.Run(t.Context(), host, queues())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 2, f.MaxOpenShells(), "shells open at once")
	assert.Zero(t, f.OpenShells())
	assert.Len(t, filter(f.Log(), "Delete "), 10)
}

func TestRunWaitsForASlotWithinItsDeadline(t *testing.T) {
	f := winrmfake.New(t, returns(winrmfake.Reply{Hang: true}))
	e := executor(t, f, func(c *config.Target) { c.MaxConcurrency = 1 })

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := e.Run(ctx, host, queues())
		first <- err
	}()
	require.Eventually(t, func() bool { return f.OpenShells() == 1 }, 5*time.Second, 10*time.Millisecond)

	a := queues()
	a.Timeout = 200 * time.Millisecond
	_, err := e.Run(t.Context(), host, a)
	require.ErrorIs(t, err, executors.ErrTimeout)
	assert.Contains(t, err.Error(), "waiting for a free shell slot (max_concurrency 1): timed out after")
	assert.Len(t, filter(f.Log(), "Create "), 1, "the second run must not open a shell")

	cancel()
	require.ErrorIs(t, <-first, context.Canceled)
	requireClosed(t, f)
}

func TestRunOutputCap(t *testing.T) {
	big := strings.Repeat(`{"Identity":"EX01\\3","MessageCount":1423},`, 1600) // ~64 KiB
	tests := []struct {
		name   string
		reply  winrmfake.Reply
		stream string
	}{
		{"stdout", winrmfake.Reply{Stdout: big}, "stdout"},
		{"stderr", winrmfake.Reply{Stdout: "[]", Stderr: big}, "stderr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := winrmfake.New(t, returns(tt.reply), winrmfake.WithChunk(8<<10))
			e := executor(t, f, func(c *config.Target) { c.MaxOutputBytes = 4096 })

			out, err := e.Run(t.Context(), host, queues())

			require.ErrorIs(t, err, executors.ErrOutputTooBig)
			assert.Contains(t, err.Error(), "winrm ex01.contoso.com: queues: output exceeds cap: "+tt.stream+
				" is larger than max_output_bytes (4096 bytes)")
			assert.True(t, out.Truncated)
			if tt.stream == "stdout" {
				assert.Len(t, out.Stdout, 4096)
				assert.True(t, bytes.HasPrefix([]byte(big), out.Stdout), "kept bytes are not the start of the output")
			}
			requireClosed(t, f)
			assert.Less(t, len(filter(f.Log(), "Receive ")), 8, "the command was streamed to the end instead of stopped")
		})
	}
}

func TestRunHTTPSWithCAFile(t *testing.T) {
	f := winrmfake.NewTLS(t, returns(winrmfake.Reply{Stdout: "[]"}))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw}), 0o600))
	https := func(c *config.Target) {
		c.Endpoints = []string{f.URL()} // https://127.0.0.1:port/wsman: in the test certificate
		c.AllowUnencrypted = false
	}

	tests := []struct {
		name    string
		mod     func(*config.Target)
		wantErr string
	}{
		{"ca_file", func(c *config.Target) { c.CAFile = caFile }, ""},
		{"insecure_skip_verify", func(c *config.Target) { c.InsecureSkipVerify = true }, ""},
		{"system roots only", func(*config.Target) {}, "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := executor(t, f, https, tt.mod)
			out, err := e.Run(t.Context(), "127.0.0.1", queues())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "[]", string(out.Stdout))
		})
	}
}

func TestRunPasswordFile(t *testing.T) {
	t.Run("a rotated file is read by the next run", func(t *testing.T) {
		f := winrmfake.New(t, returns(winrmfake.Reply{Stdout: "[]"}))
		file := filepath.Join(t.TempDir(), "winrm-password")
		require.NoError(t, os.WriteFile(file, []byte("Autumn2023!\n"), 0o600))
		e := executor(t, f, func(c *config.Target) { c.Password, c.PasswordFile = "", file })

		_, err := e.Run(t.Context(), host, queues())
		require.ErrorIs(t, err, executors.ErrAuth)

		require.NoError(t, os.WriteFile(file, []byte(winrmfake.Password+"\n"), 0o600))
		_, err = e.Run(t.Context(), host, queues())
		require.NoError(t, err)

		require.NoError(t, os.Remove(file))
		_, err = e.Run(t.Context(), host, queues())
		require.ErrorContains(t, err, "winrm ex01.contoso.com: queues: password_file: reading secret file")
	})
	for _, ending := range []string{"\n", "\r\n", ""} {
		t.Run(fmt.Sprintf("%q", ending), func(t *testing.T) {
			f := winrmfake.New(t, returns(winrmfake.Reply{Stdout: "[]"}))
			file := filepath.Join(t.TempDir(), "winrm-password")
			require.NoError(t, os.WriteFile(file, []byte(winrmfake.Password+ending), 0o600))
			e := executor(t, f, func(c *config.Target) { c.Password, c.PasswordFile = "", file })

			_, err := e.Run(t.Context(), host, queues())
			require.NoError(t, err)
		})
	}
}

func TestNew(t *testing.T) {
	valid := config.Target{
		Kind:      "winrm",
		Endpoints: []string{"https://ex01.contoso.com:5986/wsman"},
		Username:  `CONTOSO\svc-ndrbot`,
		Password:  "Winter2024!",
	}
	tests := []struct {
		name      string
		mod       func(*config.Target)
		wantHosts []string
		wantURLs  []string
		encrypted bool
	}{
		{
			name:      "https with defaults",
			mod:       func(*config.Target) {},
			wantHosts: []string{"ex01.contoso.com"},
			wantURLs:  []string{"https://ex01.contoso.com:5986/wsman"},
		},
		{
			name:      "default port and path",
			mod:       func(c *config.Target) { c.Endpoints = []string{"https://ex01.contoso.com", "http://ex02.contoso.com/"} },
			wantHosts: []string{"ex01.contoso.com", "ex02.contoso.com"},
			wantURLs:  []string{"https://ex01.contoso.com:5986/wsman", "http://ex02.contoso.com:5985/wsman"},
			encrypted: true,
		},
		{
			name: "config order and IPv6",
			mod: func(c *config.Target) {
				c.Endpoints = []string{"https://ex02:5986/wsman", "https://[fd00::15]:443/wsman"}
			},
			wantHosts: []string{"ex02", "fd00::15"},
			wantURLs:  []string{"https://ex02:5986/wsman", "https://[fd00::15]:443/wsman"},
		},
		{
			name:      "http with ntlm is encrypted",
			mod:       func(c *config.Target) { c.Endpoints = []string{"http://ex01:5985/wsman"}; c.Auth = "ntlm" },
			wantHosts: []string{"ex01"},
			wantURLs:  []string{"http://ex01:5985/wsman"},
			encrypted: true,
		},
		{
			name: "http with basic when allowed",
			mod: func(c *config.Target) {
				c.Endpoints = []string{"http://ex01:5985/wsman"}
				c.Auth, c.AllowUnencrypted = "basic", true
			},
			wantHosts: []string{"ex01"},
			wantURLs:  []string{"http://ex01:5985/wsman"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mod(&c)
			e, err := New("exchange", c)
			require.NoError(t, err)
			assert.Equal(t, "winrm", e.Kind())
			assert.Equal(t, tt.wantHosts, e.Hosts())
			for i, h := range tt.wantHosts {
				ep := e.byHost[h]
				assert.Equal(t, tt.wantURLs[i], ep.url)
				assert.Equal(t, DefaultMaxConcurrency, cap(ep.slots))
				_, isEncrypted := ep.sender("u", "p").(encryptedSender)
				if strings.HasPrefix(ep.url, "http:") {
					assert.Equal(t, tt.encrypted, isEncrypted, "NTLM encryption on %s", ep.url)
				}
			}
			assert.Equal(t, "PT60.000S", e.params.Timeout)
			assert.Equal(t, DefaultMaxOutputBytes, e.maxOut)
		})
	}

	t.Run("defaults stay untouched", func(t *testing.T) {
		c := valid
		c.OperationTimeout = 5 * time.Second
		e, err := New("exchange", c)
		require.NoError(t, err)
		assert.Equal(t, "PT5.000S", e.params.Timeout)
		assert.Equal(t, "PT60S", wsman.DefaultParameters.Timeout)
	})

	t.Run("hosts are a copy", func(t *testing.T) {
		e, err := New("exchange", valid)
		require.NoError(t, err)
		e.Hosts()[0] = "changed"
		assert.Equal(t, []string{"ex01.contoso.com"}, e.Hosts())
	})

	t.Run("printing does not show the password", func(t *testing.T) {
		e, err := New("exchange", valid)
		require.NoError(t, err)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			assert.NotContains(t, fmt.Sprintf(verb, e), "Winter2024!", verb)
		}
	})
}

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600))
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	tests := []struct {
		name string
		mod  func(*config.Target)
		want string
	}{
		{"no endpoints", func(c *config.Target) { c.Endpoints = nil }, "endpoints: none configured"},
		{"host without scheme", func(c *config.Target) { c.Endpoints = []string{"ex01:5986/wsman"} }, "scheme http or https"},
		{"other scheme", func(c *config.Target) { c.Endpoints = []string{"ftp://ex01/wsman"} }, "scheme http or https"},
		{"no host", func(c *config.Target) { c.Endpoints = []string{"https:///wsman"} }, "no host"},
		{"bad port", func(c *config.Target) { c.Endpoints = []string{"https://ex01:99999/wsman"} }, `bad port "99999"`},
		{"not a URL", func(c *config.Target) { c.Endpoints = []string{"https://ex01:59 86/wsman"} }, "endpoints[0] (unparsable URL): not a URL"},
		{"credentials in URL", func(c *config.Target) { c.Endpoints = []string{"https://svc:Hunter2@ex01/wsman"} }, "credentials do not belong in the URL"},
		{"query", func(c *config.Target) { c.Endpoints = []string{"https://ex01/wsman?PSVersion=5.1"} }, "query and fragment"},
		{"duplicate host", func(c *config.Target) {
			c.Endpoints = []string{"https://ex01/wsman", "https://ex01:443/wsman"}
		}, "endpoints[1] \"https://ex01:443/wsman\": host ex01 is listed twice"},
		{"basic over http", func(c *config.Target) { c.Endpoints = []string{"http://ex01:5985/wsman"}; c.Auth = "basic" }, "set allow_unencrypted: true"},
		{"encrypted on another path", func(c *config.Target) { c.Endpoints = []string{"http://ex01:5985/custom"} }, "only supports /wsman"},
		{"unknown auth", func(c *config.Target) { c.Auth = "kerberos" }, `auth: "kerberos" is not supported`},
		{"no username", func(c *config.Target) { c.Username = "" }, "username: required"},
		{"no password", func(c *config.Target) { c.Password = "" }, "password or password_file: required"},
		{"password and password_file", func(c *config.Target) { c.PasswordFile = empty }, "password_file: secret set both directly and through a *_file: use one"},
		{"missing password_file", func(c *config.Target) { c.Password, c.PasswordFile = "", filepath.Join(dir, "nope") }, "password_file: reading secret file: open"},
		{"empty password_file", func(c *config.Target) { c.Password, c.PasswordFile = "", empty }, "password_file: secret file " + empty + " is empty"},
		{"missing ca_file", func(c *config.Target) { c.CAFile = filepath.Join(dir, "nope.pem") }, "ca_file: open"},
		{"ca_file without PEM", func(c *config.Target) { c.CAFile = notPEM }, "holds no PEM certificate"},
		{"ca_file and insecure", func(c *config.Target) { c.CAFile, c.InsecureSkipVerify = notPEM, true }, "set one, not both"},
		{"negative max_concurrency", func(c *config.Target) { c.MaxConcurrency = -1 }, "max_concurrency: -1 is negative"},
		{"short operation_timeout", func(c *config.Target) { c.OperationTimeout = 500 * time.Millisecond }, "operation_timeout: 500ms"},
		{"negative max_output_bytes", func(c *config.Target) { c.MaxOutputBytes = -1 }, "max_output_bytes"},
		{"other kind", func(c *config.Target) { c.Kind = "probe" }, `kind is "probe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Target{
				Kind:      "winrm",
				Endpoints: []string{"https://ex01.contoso.com:5986/wsman"},
				Username:  `CONTOSO\svc-ndrbot`,
				Password:  "Winter2024!",
			}
			tt.mod(&c)
			e, err := New("exchange", c)
			require.Error(t, err)
			assert.Nil(t, e)
			assert.Contains(t, err.Error(), `winrm target "exchange": `)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "Winter2024!")
			assert.NotContains(t, err.Error(), "Hunter2")
		})
	}
}

func TestCommandLine(t *testing.T) {
	short, err := CommandLine(exchangePreamble, strings.Repeat("x", 2500), map[string]any{"sender": "alice@contoso.com"})
	require.NoError(t, err)
	assert.LessOrEqual(t, len(short), MaxCommandLine)
	call, err := winrmfake.ParseCommandLine(short)
	require.NoError(t, err)
	assert.JSONEq(t, `{"sender":"alice@contoso.com"}`, string(call.ParamsJSON))

	_, err = CommandLine(exchangePreamble, strings.Repeat("x", 3100), nil)
	require.ErrorIs(t, err, executors.ErrUnsupported)

	noParams, err := CommandLine("", "Get-Queue", nil)
	require.NoError(t, err)
	call, err = winrmfake.ParseCommandLine(noParams)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(call.ParamsJSON), "no parameters must still decode to an object")
}

func filter(log []string, prefix string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

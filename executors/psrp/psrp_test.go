package psrp

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/executors/psrp/psrpfake"
)

// setup starts a fake answering with h and an executor whose endpoints (given
// host names) all reach it.
func setup(t testing.TB, h psrpfake.Handler, mutate func(*config.Target), opts ...Option) (*psrpfake.Server, *Executor) {
	t.Helper()
	fake := psrpfake.New(h)
	u, _ := url.Parse(fake.URL)
	addr := u.Host
	tgt := config.Target{
		Kind:               "exchange",
		Endpoints:          []string{"https://ex01.test/PowerShell", "https://ex02.test/PowerShell"},
		Auth:               "basic",
		Username:           psrpfake.User,
		Password:           psrpfake.Password,
		InsecureSkipVerify: true,
		OperationTimeout:   5 * time.Second,
	}
	if mutate != nil {
		mutate(&tgt)
	}
	d := &net.Dialer{}
	opts = append([]Option{WithDialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}), WithCleanupTimeout(2 * time.Second)}, opts...)
	e, err := New("mail", tgt, opts...)
	if err != nil {
		fake.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		fake.Close()
	})
	return fake, e
}

func TestCmdletArrivesAsData(t *testing.T) {
	when := time.Date(2024, 5, 14, 7, 41, 12, 0, time.UTC)
	tests := []struct {
		name    string
		arg     executors.Arg
		wantRaw string
		want    any
	}{
		{"quote injection", executors.Arg{Name: "Identity", Value: "x'; Remove-Mailbox ceo"}, `<S N="V">x&#39;; Remove-Mailbox ceo</S>`, "x'; Remove-Mailbox ceo"},
		{"subexpression", executors.Arg{Name: "Identity", Value: "$(whoami)"}, `<S N="V">$(whoami)</S>`, "$(whoami)"},
		{"markup and newline", executors.Arg{Name: "Filter", Value: "a</S><S>b\r\n"}, `<S N="V">a&lt;/S&gt;&lt;S&gt;b_x000D_&#xA;</S>`, "a</S><S>b\r\n"},
		{"integer", executors.Arg{Name: "ResultSize", Value: int64(25)}, `<I64 N="V">25</I64>`, int64(25)},
		{"float", executors.Arg{Name: "Ratio", Value: 0.5}, `<Db N="V">0.5</Db>`, 0.5},
		{"switch", executors.Arg{Name: "IncludeDetails", Value: true}, `<B N="V">true</B>`, true},
		{"date", executors.Arg{Name: "Start", Value: when}, `<DT N="V">2024-05-14T07:41:12Z</DT>`, when},
		{"null", executors.Arg{Name: "Server", Value: nil}, `<Nil N="V" />`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got psrpfake.Command
			var gotHost string
			_, e := setup(t, func(_ context.Context, host string, cmd psrpfake.Command) psrpfake.Result {
				mu.Lock()
				got, gotHost = cmd, host
				mu.Unlock()
				return psrpfake.Result{Output: []any{&psobj.Object{
					TypeNames: []string{"Deserialized.Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo"},
					Props:     []psobj.Prop{{Name: "Identity", Value: "EX01\\3"}, {Name: "MessageCount", Value: int64(412)}},
				}}}
			}, nil)
			out, err := e.Run(context.Background(), "ex01.test", executors.Action{
				Cmdlet: "Get-Queue", Args: []executors.Arg{tt.arg}, Select: []string{"Identity", "MessageCount"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := `[{"Identity":"EX01\\3","MessageCount":412}]`; string(out.Stdout) != want {
				t.Errorf("Stdout = %s, want %s", out.Stdout, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotHost != "ex01.test" || got.Name != "Get-Queue" || got.IsScript || got.ResourceURI != ExchangeResourceURI {
				t.Errorf("command = %+v on %s", got, gotHost)
			}
			if len(got.Params) != 1 || got.Params[0].Name != tt.arg.Name {
				t.Fatalf("params = %+v", got.Params)
			}
			if raw := string(got.Params[0].Raw); raw != tt.wantRaw {
				t.Errorf("raw value\n got %s\nwant %s", raw, tt.wantRaw)
			}
			v := got.Params[0].Value
			if tm, ok := tt.want.(time.Time); ok {
				if g, ok := v.(time.Time); !ok || !g.Equal(tm) {
					t.Errorf("value = %#v, want %v", v, tm)
				}
			} else if v != tt.want {
				t.Errorf("value = %#v, want %#v", v, tt.want)
			}
		})
	}
}

func TestRunRefusesBeforeSending(t *testing.T) {
	tests := []struct {
		name string
		a    executors.Action
		is   error
	}{
		{"script", executors.Action{Step: "s", Script: "Get-Queue | Where-Object { $_.MessageCount -gt 0 }"}, executors.ErrUnsupported},
		{"check", executors.Action{Step: "s", Check: "smtp"}, executors.ErrUnsupported},
		{"no cmdlet", executors.Action{Step: "s"}, executors.ErrUnsupported},
		{"script as cmdlet", executors.Action{Cmdlet: "Get-Queue; Remove-Mailbox ceo"}, nil},
		{"path as cmdlet", executors.Action{Cmdlet: `C:\evil.ps1`}, nil},
		{"bad parameter name", executors.Action{Cmdlet: "Get-Queue", Args: []executors.Arg{{Name: "Identity -Confirm", Value: "x"}}}, nil},
		{"bad value type", executors.Action{Cmdlet: "Get-Queue", Args: []executors.Arg{{Name: "Identity", Value: struct{}{}}}}, nil},
	}
	fake, e := setup(t, func(context.Context, string, psrpfake.Command) psrpfake.Result { return psrpfake.Result{} }, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Run(context.Background(), "ex01.test", tt.a)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
	if st := fake.Stats("ex01.test"); st.PoolsOpened != 0 || st.Pipelines != 0 {
		t.Errorf("refused actions reached the server: %+v", st)
	}
}

func TestErrorsAndWarnings(t *testing.T) {
	_, e := setup(t, func(_ context.Context, _ string, cmd psrpfake.Command) psrpfake.Result {
		switch cmd.Name {
		case "Get-Mailbox":
			return psrpfake.Result{Errors: []psrpfake.Failure{{
				Message:  "The operation couldn't be performed because object 'ceo@contoso.example' couldn't be found on 'dc01'.",
				Category: "ObjectNotFound", Target: "ceo@contoso.example",
			}}}
		default:
			return psrpfake.Result{
				Output:   []any{"ok"},
				Warnings: []string{"The command completed successfully but no settings of 'EX01' have been modified."},
			}
		}
	}, nil)
	_, err := e.Run(context.Background(), "ex02.test", executors.Action{Cmdlet: "Get-Mailbox", Args: []executors.Arg{{Name: "Identity", Value: "ceo@contoso.example"}}})
	if !errors.Is(err, executors.ErrExit) {
		t.Fatalf("err = %v, want ErrExit", err)
	}
	for _, want := range []string{"psrp ex02.test: Get-Mailbox:", "couldn't be found on 'dc01'", "category ObjectNotFound", `target "ceo@contoso.example"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	out, err := e.Run(context.Background(), "ex02.test", executors.Action{Cmdlet: "Set-TransportService", Args: []executors.Arg{{Name: "Identity", Value: "EX01"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "WARNING: The command completed successfully but no settings of 'EX01' have been modified.\n"; out.Stderr != want {
		t.Errorf("Stderr = %q, want %q", out.Stderr, want)
	}
	if string(out.Stdout) != `[{"Value":"ok"}]` {
		t.Errorf("Stdout = %s", out.Stdout)
	}
}

func TestTimeoutStopsPipeline(t *testing.T) {
	fake, e := setup(t, func(ctx context.Context, _ string, _ psrpfake.Command) psrpfake.Result {
		return psrpfake.Result{Delay: time.Minute, Output: []any{"late"}}
	}, nil)
	_, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-MessageTrackingLog", Timeout: 300 * time.Millisecond})
	if !errors.Is(err, executors.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	st := fake.Stats("ex01.test")
	if len(st.Signals) == 0 || st.Signals[0] != "http://schemas.microsoft.com/powershell/signal/crtl_c" {
		t.Errorf("signals = %v, want crtl_c first", st.Signals)
	}
	// The fake's pipeline ends once stopped; give its goroutine a moment.
	deadline := time.Now().Add(5 * time.Second)
	for fake.Stats("ex01.test").PipelinesNow != 0 {
		if time.Now().After(deadline) {
			t.Fatal("pipeline still running on the server after the timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOutputCap(t *testing.T) {
	_, e := setup(t, func(context.Context, string, psrpfake.Command) psrpfake.Result {
		out := make([]any, 200)
		for i := range out {
			out[i] = strings.Repeat("x", 100)
		}
		return psrpfake.Result{Output: out}
	}, func(t *config.Target) { t.MaxOutputBytes = 4096 })
	_, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-Queue"})
	if !errors.Is(err, executors.ErrOutputTooBig) {
		t.Fatalf("err = %v, want ErrOutputTooBig", err)
	}
}

func TestAuthFailure(t *testing.T) {
	_, e := setup(t, func(context.Context, string, psrpfake.Command) psrpfake.Result { return psrpfake.Result{} },
		func(t *config.Target) { t.Password = "wrong" })
	_, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-Queue"})
	if !errors.Is(err, executors.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
}

func TestUnreachable(t *testing.T) {
	e, err := New("mail", config.Target{
		Kind: "jea", Endpoints: []string{"https://127.0.0.1:1/wsman"}, Auth: "basic", ConfigurationName: "ndrbot",
		Username: "u", Password: "p", InsecureSkipVerify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if e.Kind() != "jea" {
		t.Errorf("Kind = %q", e.Kind())
	}
	_, err = e.Run(context.Background(), "127.0.0.1", executors.Action{Cmdlet: "Restart-Service"})
	if !errors.Is(err, executors.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestBrokenPoolReopenedOnce(t *testing.T) {
	fake, e := setup(t, func(context.Context, string, psrpfake.Command) psrpfake.Result {
		return psrpfake.Result{Output: []any{"ok"}}
	}, nil)
	run := func() error {
		_, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-Queue"})
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	fake.BreakPools()
	if err := run(); err != nil {
		t.Fatalf("after one break: %v", err)
	}
	if st := fake.Stats("ex01.test"); st.PoolsOpened != 2 {
		t.Errorf("pools opened = %d, want 2 (one reopen)", st.PoolsOpened)
	}
	fake.BreakPools()
	fake.BreakNewPools(true)
	err := run()
	if err == nil || !strings.Contains(err.Error(), "reopened once") {
		t.Fatalf("err = %v, want a failure after one reopen", err)
	}
	if st := fake.Stats("ex01.test"); st.PoolsOpened != 3 {
		t.Errorf("pools opened = %d, want 3 (exactly one more reopen)", st.PoolsOpened)
	}
}

func TestPoolHygiene(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const conc = 3
	fake := psrpfake.New(func(ctx context.Context, _ string, _ psrpfake.Command) psrpfake.Result {
		return psrpfake.Result{Output: []any{"ok"}, Delay: 5 * time.Millisecond}
	})
	defer fake.Close()
	u, _ := url.Parse(fake.URL)
	d := &net.Dialer{}
	e, err := New("mail", config.Target{
		Kind: "exchange", Endpoints: []string{"https://ex01.test/PowerShell", "https://ex02.test/PowerShell"},
		Auth: "basic", Username: psrpfake.User, Password: psrpfake.Password, InsecureSkipVerify: true,
		MaxConcurrency: conc,
	}, WithDialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, u.Host)
	}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		host := []string{"ex01.test", "ex02.test"}[i%2]
		wg.Go(func() {
			if _, err := e.Run(context.Background(), host, executors.Action{Cmdlet: "Get-Queue"}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, h := range []string{"ex01.test", "ex02.test"} {
		st := fake.Stats(h)
		if st.PoolsOpened != 1 || st.Pipelines != 25 {
			t.Errorf("%s: %d pools opened, %d pipelines; want 1 and 25", h, st.PoolsOpened, st.Pipelines)
		}
		if st.PipelinesMax > conc {
			t.Errorf("%s: %d pipelines at once, max_concurrency is %d", h, st.PipelinesMax, conc)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fake.OpenPools(); n != 0 {
		t.Errorf("%d pools still open after Close", n)
	}
	if _, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-Queue"}); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestIdlePoolClosed(t *testing.T) {
	fake, e := setup(t, func(context.Context, string, psrpfake.Command) psrpfake.Result {
		return psrpfake.Result{Output: []any{"ok"}}
	}, nil, WithIdleTimeout(50*time.Millisecond))
	if _, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-Queue"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fake.OpenPools() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle pool never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Get-Queue"}); err != nil {
		t.Fatal(err)
	}
	if st := fake.Stats("ex01.test"); st.PoolsOpened != 2 || st.PoolsClosed != 1 {
		t.Errorf("stats %+v, want a second pool after the idle close", st)
	}
}

// BenchmarkCmdlet reports what a cmdlet costs beyond the fake's own 5ms: with a
// warm pool (the normal case) and with a cold one (first step, or after
// idle_timeout).
func BenchmarkCmdlet(b *testing.B) {
	const delay = 5 * time.Millisecond
	h := func(context.Context, string, psrpfake.Command) psrpfake.Result {
		return psrpfake.Result{Output: []any{"ok"}, Delay: delay}
	}
	a := executors.Action{Cmdlet: "Get-Queue", Args: []executors.Arg{{Name: "Identity", Value: "EX01\\3"}}}
	b.Run("warm", func(b *testing.B) {
		_, e := setup(b, h, nil)
		if _, err := e.Run(context.Background(), "ex01.test", a); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			if _, err := e.Run(context.Background(), "ex01.test", a); err != nil {
				b.Fatal(err)
			}
		}
		report(b, delay)
	})
	b.Run("cold", func(b *testing.B) {
		_, e := setup(b, h, nil)
		for b.Loop() {
			if _, err := e.Run(context.Background(), "ex01.test", a); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := e.byHost["ex01.test"].dropPool(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		report(b, delay)
	})
}

func report(b *testing.B, delay time.Duration) {
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per-delay)/float64(time.Microsecond), "overhead-µs/op")
	b.ReportMetric(float64(per)/float64(delay), "x-fake-latency")
}

func TestJEAResourceURI(t *testing.T) {
	var mu sync.Mutex
	var uri string
	_, e := setup(t, func(_ context.Context, _ string, cmd psrpfake.Command) psrpfake.Result {
		mu.Lock()
		uri = cmd.ResourceURI
		mu.Unlock()
		return psrpfake.Result{}
	}, func(t *config.Target) {
		t.Kind, t.ConfigurationName = "jea", "ndrbot"
		t.Endpoints = []string{"https://ex01.test:5986/wsman"}
	})
	if _, err := e.Run(context.Background(), "ex01.test", executors.Action{Cmdlet: "Restart-Service", Args: []executors.Arg{{Name: "Name", Value: "MSExchangeTransport"}}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if uri != "http://schemas.microsoft.com/powershell/ndrbot" {
		t.Errorf("resource URI = %q", uri)
	}
}

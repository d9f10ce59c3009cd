package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
)

func TestCanonicalJSON(t *testing.T) {
	cases := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "sorted keys, no whitespace", in: `{ "b": 1, "a": [ true, null, "x" ] }`, want: `{"a":[true,null,"x"],"b":1}`},
		{name: "nested objects sorted", in: `{"z":{"y":1,"x":{"b":2,"a":1}}}`, want: `{"z":{"x":{"a":1,"b":2},"y":1}}`},
		{name: "numbers as written", in: `[1.50, 1e3, -0, 12345678901234567890]`, want: `[1.50,1e3,-0,12345678901234567890]`},
		{name: "escapes only what must be", in: `"a\"b\\c\nd\te\u0001<&>\u00e9\u2028"`, want: "\"a\\\"b\\\\c\\nd\\te\\u0001<&>é\u2028\""},
		{name: "unicode escapes decoded", in: `"\u0041\ud83d\ude00"`, want: `"A😀"`},
		{name: "duplicate key keeps last", in: `{"a":1,"a":2}`, want: `{"a":2}`},
		{name: "bytewise key order", in: `{"é":1,"Z":2,"a":3}`, want: `{"Z":2,"a":3,"é":1}`},
		{name: "empty is null", in: ``, want: `null`},
		{name: "invalid", in: `{"a":`, wantErr: true},
		{name: "trailing data", in: `{} {}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.CanonicalJSON([]byte(tc.in))
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
			again, err := audit.CanonicalJSON(got)
			require.NoError(t, err)
			assert.Equal(t, string(got), string(again), "idempotent")
		})
	}
}

func sample(seq int64) audit.Event {
	return audit.Event{Seq: seq, Time: time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.UTC),
		Actor: incident.Actor{ID: "U0ALICE", Name: "alice"}, RunID: "r-20261123-0e1b5a3f2c", Kind: audit.KindApproval,
		Payload: json.RawMessage(`{"votes":1, "approval_id":"a-1"}`)}
}

// TestEncodeGolden pins the canonical encoding: a change of format must be deliberate
// (a new encoding tag), since it would break every stored chain.
func TestEncodeGolden(t *testing.T) {
	e := sample(1)
	require.NoError(t, audit.Seal(&e, audit.Genesis, nil))
	assert.Equal(t, audit.AlgSHA256, e.Alg)
	assert.Equal(t, `{"approval_id":"a-1","votes":1}`, string(e.Payload))
	assert.Equal(t, time.Date(2026, 11, 23, 10, 4, 5, 123456000, time.UTC), e.Time, "microseconds")
	enc, err := audit.Encode(e)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(enc), "ndrbot-audit-v1\x00\x00\x00\x00\x00\x00\x00\x011\x00\x00\x00\x00\x00\x00\x00\x1b2026-11-23T10:04:05.123456Z"))
	assert.Equal(t, "7abc1fdccbb97500805aa0a833e89d052c88f6d4e5607ae716dd6d6f1e663d1b", e.Hash)

	k := sample(1)
	require.NoError(t, audit.Seal(&k, audit.Genesis, []byte("key")))
	assert.Equal(t, audit.AlgHMAC, k.Alg)
	assert.NotEqual(t, e.Hash, k.Hash)
}

func TestEncodeIsUnambiguous(t *testing.T) {
	a, b := sample(1), sample(1)
	a.Actor, b.Actor = incident.Actor{ID: "ab", Name: "c"}, incident.Actor{ID: "a", Name: "bc"}
	a.Alg, b.Alg = audit.AlgSHA256, audit.AlgSHA256
	ha, err := audit.ComputeHash(a, nil)
	require.NoError(t, err)
	hb, err := audit.ComputeHash(b, nil)
	require.NoError(t, err)
	assert.NotEqual(t, ha, hb)
}

// chain builds n sealed events.
func chain(t testing.TB, n int, key []byte) []audit.Event {
	out := make([]audit.Event, n)
	prev := audit.Genesis
	for i := range out {
		e := sample(int64(i + 1))
		e.Payload = json.RawMessage(fmt.Sprintf(`{"i":%d,"text":"queue ex01\\Submission holds %d messages"}`, i, 1000+i))
		require.NoError(t, audit.Seal(&e, prev, key))
		prev = e.Hash
		out[i] = e
	}
	return out
}

type mem []audit.Event

func (m mem) Events(_ context.Context, f audit.Filter) iter.Seq2[audit.Event, error] {
	return func(yield func(audit.Event, error) bool) {
		for _, e := range m {
			if f.Match(e) && !yield(e, nil) {
				return
			}
		}
	}
}

type memHead struct {
	mem
	seq  int64
	hash string
}

func (m memHead) AuditHead(context.Context) (audit.Head, error) {
	return audit.Head{Seq: m.seq, Hash: m.hash}, nil
}

func TestVerify(t *testing.T) {
	key := []byte("k3y")
	cases := []struct {
		name    string
		key     []byte
		tamper  func(c []audit.Event) audit.Source
		wantSeq int64
		wantWhy audit.Reason
	}{
		{name: "intact", tamper: func(c []audit.Event) audit.Source { return mem(c) }},
		{name: "intact with key", key: key, tamper: func(c []audit.Event) audit.Source { return mem(c) }},
		{name: "edited payload", tamper: func(c []audit.Event) audit.Source {
			c[4].Payload = json.RawMessage(`{"i":4,"text":"all good"}`)
			return mem(c)
		}, wantSeq: 5, wantWhy: audit.ReasonAltered},
		{name: "whitespace-only edit is no change", tamper: func(c []audit.Event) audit.Source {
			c[4].Payload = json.RawMessage(" " + string(c[4].Payload) + "\n")
			return mem(c)
		}},
		{name: "edited time", tamper: func(c []audit.Event) audit.Source {
			c[2].Time = c[2].Time.Add(time.Microsecond)
			return mem(c)
		}, wantSeq: 3, wantWhy: audit.ReasonAltered},
		{name: "deleted event", tamper: func(c []audit.Event) audit.Source {
			return mem(append(c[:3:3], c[4:]...))
		}, wantSeq: 4, wantWhy: audit.ReasonDeleted},
		{name: "deleted first event", tamper: func(c []audit.Event) audit.Source { return mem(c[1:]) }, wantSeq: 1, wantWhy: audit.ReasonDeleted},
		{name: "deleted tail, head remembers", tamper: func(c []audit.Event) audit.Source {
			return memHead{mem(c[:7]), 10, c[9].Hash}
		}, wantSeq: 8, wantWhy: audit.ReasonTruncated},
		{name: "last event replaced, head remembers", tamper: func(c []audit.Event) audit.Source {
			last := c[9]
			last.Payload = json.RawMessage(`{"x":1}`)
			require.NoError(t, audit.Seal(&last, c[8].Hash, nil))
			c[9] = last
			return memHead{mem(c), 10, "other"}
		}, wantSeq: 10, wantWhy: audit.ReasonReplaced},
		{name: "swapped seq numbers", tamper: func(c []audit.Event) audit.Source {
			c[5].Seq, c[6].Seq = 7, 6
			c[5], c[6] = c[6], c[5]
			return mem(c)
		}, wantSeq: 6, wantWhy: audit.ReasonReordered},
		{name: "out of order stream", tamper: func(c []audit.Event) audit.Source {
			c[5], c[6] = c[6], c[5]
			return mem(c)
		}, wantSeq: 6, wantWhy: audit.ReasonDeleted},
		{name: "inserted with shifted seq", tamper: func(c []audit.Event) audit.Source {
			ins := sample(4)
			require.NoError(t, audit.Seal(&ins, c[2].Hash, nil))
			out := append(append(c[:3:3], ins), c[3:]...)
			for i := 4; i < len(out); i++ {
				out[i].Seq++
			}
			return mem(out)
		}, wantSeq: 5, wantWhy: audit.ReasonReordered},
		{name: "rewritten with recomputed hash", tamper: func(c []audit.Event) audit.Source {
			c[3].Payload = json.RawMessage(`{"rewritten":true}`)
			require.NoError(t, audit.Seal(&c[3], c[2].Hash, nil))
			return mem(c)
		}, wantSeq: 4, wantWhy: audit.ReasonReplaced},
		{name: "forged append without key", key: key, tamper: func(c []audit.Event) audit.Source {
			f := sample(11)
			require.NoError(t, audit.Seal(&f, c[9].Hash, nil))
			return mem(append(c, f))
		}, wantSeq: 11, wantWhy: audit.ReasonForged},
		{name: "forged sha256 labelled hmac", key: key, tamper: func(c []audit.Event) audit.Source {
			f := sample(11)
			f.PrevHash, f.Alg = c[9].Hash, audit.AlgHMAC
			enc, err := audit.Encode(f)
			require.NoError(t, err)
			sum := sha256.Sum256(enc)
			f.Hash = hex.EncodeToString(sum[:])
			return mem(append(c, f))
		}, wantSeq: 11, wantWhy: audit.ReasonForged},
		{name: "recomputed without key", key: key, tamper: func(c []audit.Event) audit.Source {
			c[2].Payload = json.RawMessage(`{}`)
			k := c[2]
			require.NoError(t, audit.Seal(&k, c[1].Hash, []byte("not the key")))
			c[2] = k
			return mem(c)
		}, wantSeq: 3, wantWhy: audit.ReasonAltered},
		{name: "keyed chain verified without key", tamper: func(c []audit.Event) audit.Source {
			k := chain(t, 3, key)
			return mem(k)
		}, wantSeq: 1, wantWhy: audit.ReasonNeedKey},
		{name: "unknown alg", tamper: func(c []audit.Event) audit.Source {
			c[0].Alg = "md5"
			return mem(c)
		}, wantSeq: 1, wantWhy: audit.ReasonAltered},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := audit.Verify(context.Background(), tc.tamper(chain(t, 10, tc.key)), tc.key)
			require.NoError(t, err)
			if tc.wantSeq == 0 {
				assert.True(t, rep.OK, rep.String())
				assert.EqualValues(t, 10, rep.Events)
				assert.Contains(t, rep.String(), "audit chain OK: 10 events")
				return
			}
			assert.False(t, rep.OK)
			assert.Equal(t, tc.wantSeq, rep.FirstBad, rep.String())
			assert.Equal(t, tc.wantWhy, rep.Reason, rep.String())
		})
	}
}

func TestVerifyUnkeyedPrefix(t *testing.T) {
	key := []byte("k")
	c := chain(t, 3, nil) // written before the key was configured
	for i := 4; i <= 6; i++ {
		e := sample(int64(i))
		require.NoError(t, audit.Seal(&e, c[len(c)-1].Hash, key))
		c = append(c, e)
	}
	rep, err := audit.Verify(context.Background(), mem(c), key)
	require.NoError(t, err)
	assert.True(t, rep.OK, rep.String())
	assert.EqualValues(t, 3, rep.Unkeyed)
	assert.Contains(t, rep.String(), "the first 3 events predate the HMAC key")
}

func TestVerifyHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := audit.Verify(ctx, mem(chain(t, 5, nil)), nil)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestRedact(t *testing.T) {
	r := audit.NewRedactor("Sup3r-Secret-WinRM", "", "tenant-secret-value")
	cases := []struct {
		name, in string
		gone     []string // must not survive
		keep     []string // must survive
	}{
		{name: "configured secret inside text", in: "login failed for svc with Sup3r-Secret-WinRM on ex01",
			gone: []string{"Sup3r-Secret-WinRM"}, keep: []string{"login failed for svc with", "on ex01"}},
		{name: "password pair", in: "net use \\\\ex01 password=hunter2 user=svc", gone: []string{"hunter2"}, keep: []string{"password=", "user=svc"}},
		{name: "connection string", in: "Server=sql01;User Id=ndr;Password=P@ssw0rd!;Database=x", gone: []string{"P@ssw0rd!"}, keep: []string{"Server=sql01", "Database=x"}},
		{name: "quoted password", in: `pwd: "two words"`, gone: []string{"two words"}},
		{name: "url userinfo", in: "dsn postgres://ndrbot:pgS3cret@db01:5432/ndr?sslmode=require", gone: []string{"pgS3cret"}, keep: []string{"postgres://ndrbot:", "@db01:5432/ndr"}},
		{name: "bearer", in: "GET /v1.0/subscriptions with Bearer abcDEF123456789._-~+/xyz=", gone: []string{"abcDEF123456789"}, keep: []string{"Bearer"}},
		{name: "authorization header", in: "Authorization: Basic dXNlcjpwYXNzd29yZA==", gone: []string{"dXNlcjpwYXNzd29yZA"}, keep: []string{"Authorization:"}},
		{name: "authorization ntlm", in: "authorization=NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw", gone: []string{"TlRMTVNTUAABAAAAB4IIog"}},
		{name: "slack bot token", in: "token xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", gone: []string{"xoxb-1234567890", "AbCdEfGhIjKlMnOp"}},
		{name: "slack user and app tokens", in: "xoxp-11-22-33-aa and xapp-1-A0B1C2-123-abc", gone: []string{"xoxp-11", "xapp-1-A0B1C2"}},
		{name: "jwt", in: "token eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJncmFwaCJ9.c2lnbmF0dXJl", gone: []string{"eyJhbGciOiJSUzI1NiJ9", "c2lnbmF0dXJl"}},
		{name: "private key", in: "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\nrest",
			gone: []string{"MIIEpAIBAAKCAQEA"}, keep: []string{"rest", "BEGIN RSA PRIVATE KEY"}},
		{name: "secure string", in: `$p = ConvertTo-SecureString "Winter2026!" -AsPlainText -Force`, gone: []string{"Winter2026!"}, keep: []string{"-AsPlainText"}},
		{name: "client secret", in: "client_secret=abc~DEF.123&grant_type=client_credentials", gone: []string{"abc~DEF.123"}, keep: []string{"grant_type=client_credentials"}},
		{name: "harmless text survives", in: "Queue ex01\\Submission holds 1532 messages; 5.5.4 persists",
			keep: []string{"Queue ex01\\Submission holds 1532 messages; 5.5.4 persists"}},
		{name: "digest and time with colons survive", in: "sha256:9f2c4b1e0d7a at 10:00:03",
			keep: []string{"sha256:9f2c4b1e0d7a at 10:00:03"}},
		// (?i) folds the long s (U+017F) to s and the Kelvin sign (U+212A) to k: the
		// cheap tests in front of the regexps must not let these past.
		{name: "password with long s", in: "pa\u017f\u017fword=hunter2", gone: []string{"hunter2"}},
		{name: "basic with long s", in: "Ba\u017fic dXNlcjpwYXNzd29yZA==", gone: []string{"dXNlcjpwYXNzd29yZA"}},
		{name: "token with kelvin sign", in: "to\u212aen: abc123def", gone: []string{"abc123def"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := r.String(tc.in)
			for _, g := range tc.gone {
				assert.NotContains(t, got, g)
			}
			for _, k := range tc.keep {
				assert.Contains(t, got, k)
			}
			if len(tc.gone) > 0 {
				assert.Contains(t, got, audit.Redacted)
			} else {
				assert.Equal(t, tc.in, got)
			}
		})
	}
}

func TestRedactJSON(t *testing.T) {
	r := audit.NewRedactor("tenant-secret-value")
	in := `{"params":{"sender":"alice@contoso.com","password":"pw1","api_key":"k-123","password_set":true,"token":"","pa\u017f\u017fword":"pw2","Client-Secret":"cs1"},
		"headers":{"Authorization":"Bearer abcdefghijklmnop"},"rows":[{"Note":"uses tenant-secret-value"}],"n":3,"script_digest":"sha256:9f2c"}`
	out, err := r.JSON([]byte(in))
	require.NoError(t, err)
	assert.JSONEq(t, `{"params":{"sender":"alice@contoso.com","password":"[redacted]","api_key":"[redacted]","password_set":true,"token":"","pa\u017f\u017fword":"[redacted]","Client-Secret":"[redacted]"},
		"headers":{"Authorization":"[redacted]"},"rows":[{"Note":"uses [redacted]"}],"n":3,"script_digest":"sha256:9f2c"}`, string(out))
	canon, err := audit.CanonicalJSON(out)
	require.NoError(t, err)
	assert.Equal(t, string(canon), string(out), "redacted output is canonical")
	var nilR *audit.Redactor
	assert.Equal(t, "password="+audit.Redacted, nilR.String("password=x1"), "nil redactor applies the patterns")
	_, err = r.JSON([]byte(`{`))
	assert.Error(t, err)
}

// Canonical payloads that JSON passes on as they are when nothing in them is
// redacted: each of these has something that is, and must come out without it.
func TestRedactJSONCanonicalInput(t *testing.T) {
	r := audit.NewRedactor("tenant-secret-value")
	cases := []struct{ name, in, want string }{
		{"credential-named member", `{"password":"pw1","user":"svc"}`, `{"password":"[redacted]","user":"svc"}`},
		{"credential-named member holding an object", `{"api_key":{"v":1}}`, `{"api_key":"[redacted]"}`},
		{"credential-named member holding a number", `{"pin":1,"token":12345}`, `{"pin":1,"token":"[redacted]"}`},
		{"pattern in a string", `{"cmd":"net use password=hunter2"}`, `{"cmd":"net use password=[redacted]"}`},
		{"configured secret in an array", `["x","uses tenant-secret-value"]`, `["x","uses [redacted]"]`},
		{"secret behind an escape", `{"cmd":"\u0001password=hunter2"}`, `{"cmd":"\u0001password=[redacted]"}`},
		{"top-level string", `"Bearer abcdefghijklmnop"`, `"Bearer [redacted]"`},
		{"nothing to redact", `{"hosts":["ex01"],"password_set":true,"status":"ok","token":""}`, `{"hosts":["ex01"],"password_set":true,"status":"ok","token":""}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			canon, err := audit.CanonicalJSON([]byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.in, string(canon), "the input is canonical")
			out, err := r.JSON([]byte(tc.in))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(out))
		})
	}
}

func TestExportRoundTrip(t *testing.T) {
	c := chain(t, 4, nil)
	c[1].Payload, _ = audit.CanonicalJSON([]byte(`{"html":"<b>&</b>","nl":"a\nb"}`))
	require.NoError(t, audit.Seal(&c[1], c[0].Hash, nil))
	for i := 2; i < 4; i++ {
		require.NoError(t, audit.Seal(&c[i], c[i-1].Hash, nil))
	}
	var sb strings.Builder
	n, err := audit.Export(context.Background(), &sb, mem(c), audit.Filter{}, audit.FormatJSONL)
	require.NoError(t, err)
	assert.EqualValues(t, 4, n)
	assert.Contains(t, sb.String(), `"html":"<b>&</b>"`, "no HTML escaping")
	assert.Contains(t, sb.String(), `"time":"2026-11-23T10:04:05.123456Z"`)
	assert.Equal(t, 4, strings.Count(sb.String(), "\n"))
	rep, err := audit.Verify(context.Background(), audit.SeqSource{Seq: audit.ReadJSONL(strings.NewReader(sb.String()))}, nil)
	require.NoError(t, err)
	assert.True(t, rep.OK, rep.String())

	sb.Reset()
	_, err = audit.Export(context.Background(), &sb, mem(c), audit.Filter{AfterSeq: 2}, audit.FormatCSV)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "seq,time,actor_id,actor_name,run_id,kind,payload,alg,prev_hash,hash", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "3,2026-11-23T10:04:05.123456Z,U0ALICE,alice,"))

	_, err = audit.Export(context.Background(), &sb, mem(c), audit.Filter{}, "xml")
	assert.ErrorIs(t, err, incident.ErrInvalidInput)
}

func TestFilter(t *testing.T) {
	e := sample(5)
	cases := []struct {
		f    audit.Filter
		want bool
	}{
		{audit.Filter{}, true},
		{audit.Filter{RunID: e.RunID}, true},
		{audit.Filter{RunID: "r-other"}, false},
		{audit.Filter{Since: e.Time}, true},
		{audit.Filter{Since: e.Time.Add(time.Second)}, false},
		{audit.Filter{AfterSeq: 4}, true},
		{audit.Filter{AfterSeq: 5}, false},
		{audit.Filter{Kinds: []audit.Kind{audit.KindStep, audit.KindApproval}}, true},
		{audit.Filter{Kinds: []audit.Kind{audit.KindStep}}, false},
	}
	for i, tc := range cases {
		assert.Equal(t, tc.want, tc.f.Match(e), "case %d", i)
	}
}

func TestTimeline(t *testing.T) {
	rec := func(seq int64, kind audit.Kind, actor incident.Actor, payload string) audit.Event {
		return audit.Event{Seq: seq, Time: time.Date(2026, 11, 23, 10, 0, int(seq), 0, time.UTC), Actor: actor,
			RunID: "r-1", Kind: kind, Payload: json.RawMessage(payload)}
	}
	evs := mem{
		rec(1, audit.KindRun, incident.CLIActor("ops"), `{"playbook":"ndr-5.5.4","version":"sha256:0123456789abcdef","origin":"cli","params":{"sender":"a@b.c"}}`),
		rec(2, audit.KindStep, incident.BotActor, `{"step":"queues","target":"exchange","hosts":["ex01"],"executor":"lab","status":"ok","exit_code":0,"duration":"1.2s"}`),
		rec(3, audit.KindFinding, incident.BotActor, `{"severity":"critical","text":"Queue holds 1532 messages"}`),
		rec(4, audit.KindApproved, incident.Actor{ID: "U0BOB", Name: "bob"}, `{"relief":"restart-transport","approvers":["bob (U0BOB)"],"approval_id":"a-1"}`),
		rec(5, audit.KindRelief, incident.BotActor, `{"relief":"restart-transport","hosts":["ex01"],"state":"ok"}`),
		rec(6, "custom", incident.BotActor, `{"text":"something else"}`),
	}
	var sb strings.Builder
	n, err := audit.WriteTimeline(&sb, evs.Events(context.Background(), audit.Filter{}), nil)
	require.NoError(t, err)
	assert.EqualValues(t, 6, n)
	out := sb.String()
	for _, want := range []string{
		"2026-11-23 10:00:01.000 UTC  #1     run              cli:ops                  playbook ndr-5.5.4 version sha256:01234… from cli sender=a@b.c",
		"queues on exchange [ex01] via lab: ok exit 0 in 1.2s",
		"[critical] Queue holds 1532 messages",
		"bob (U0BOB)",
		"restart-transport approved by bob (U0BOB) (a-1)",
		"restart-transport on [ex01] ok",
		"something else",
	} {
		assert.Contains(t, out, want)
	}
}

func BenchmarkVerifyMemory100k(b *testing.B) {
	c := chain(b, 100_000, nil)
	b.ResetTimer()
	for b.Loop() {
		rep, err := audit.Verify(context.Background(), mem(c), nil)
		if err != nil || !rep.OK {
			b.Fatal(err, rep)
		}
	}
}

// BenchmarkVerifyVsSHA256 times Verify over 100 000 events held in memory and
// its floor — SHA-256 over the same events' stored bytes (every column as the
// store keeps it) — alternately in one run, and reports the ratio: the machine's
// noise moves both alike.
func BenchmarkVerifyVsSHA256(b *testing.B) {
	c := chain(b, 100_000, nil)
	stored := make([][]byte, len(c))
	for i, e := range c {
		stored[i] = fmt.Appendf(nil, "%d%s%s%s%s%s%s%s%s%s", e.Seq, e.Time.Format(audit.TimeLayout), e.Actor.ID, e.Actor.Name,
			e.RunID, e.Kind, e.Alg, e.PrevHash, e.Payload, e.Hash)
	}
	var verify, floor time.Duration
	for b.Loop() {
		t0 := time.Now()
		rep, err := audit.Verify(context.Background(), mem(c), nil)
		if err != nil || !rep.OK {
			b.Fatal(err, rep)
		}
		t1 := time.Now()
		for _, s := range stored {
			sha256.Sum256(s)
		}
		verify, floor = verify+t1.Sub(t0), floor+time.Since(t1)
	}
	b.ReportMetric(float64(verify)/float64(b.N)/1e6, "verify-ms")
	b.ReportMetric(float64(floor)/float64(b.N)/1e6, "sha256-ms")
	b.ReportMetric(float64(verify)/float64(floor), "x-floor")
}

package psobj

import (
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDecodePrimitives(t *testing.T) {
	cet := time.FixedZone("", 2*3600)
	tests := []struct {
		xml  string
		want any
	}{
		{`<S>hello</S>`, "hello"},
		{`<S></S>`, ""},
		{`<S>a_x000D__x000A_b</S>`, "a\r\nb"},
		{`<S>_x005F_x0041_</S>`, "_x0041_"},
		{`<S>_xD83D__xDE00_</S>`, "😀"},
		{`<S>&lt;x&gt; &amp; 'q'</S>`, "<x> & 'q'"},
		{`<C>65</C>`, "A"},
		{`<B>true</B>`, true},
		{`<B>false</B>`, false},
		{`<DT>2024-05-14T09:41:12.5031872+02:00</DT>`, time.Date(2024, 5, 14, 9, 41, 12, 503187200, cet)},
		{`<DT>2024-05-14T07:41:12Z</DT>`, time.Date(2024, 5, 14, 7, 41, 12, 0, time.UTC)},
		{`<DT>2024-05-14T07:41:12</DT>`, time.Date(2024, 5, 14, 7, 41, 12, 0, time.UTC)},
		{`<TS>PT1H2M3.5S</TS>`, Duration(time.Hour + 2*time.Minute + 3500*time.Millisecond)},
		{`<TS>P2DT3H</TS>`, Duration(51 * time.Hour)},
		{`<TS>-PT5S</TS>`, Duration(-5 * time.Second)},
		{`<By>255</By>`, int64(255)},
		{`<SB>-128</SB>`, int64(-128)},
		{`<U16>65535</U16>`, int64(65535)},
		{`<I16>-3</I16>`, int64(-3)},
		{`<U32>4294967295</U32>`, int64(4294967295)},
		{`<I32>-2147483648</I32>`, int64(math.MinInt32)},
		{`<U64>18446744073709551615</U64>`, uint64(math.MaxUint64)},
		{`<I64>9223372036854775807</I64>`, int64(math.MaxInt64)},
		{`<Sg>1.5</Sg>`, 1.5},
		{`<Db>-INF</Db>`, math.Inf(-1)},
		{`<D>12.25</D>`, 12.25},
		{`<BA>AQID</BA>`, []byte{1, 2, 3}},
		{`<G>5f3c7a42-0d5e-4c8e-9a41-2b7d1c0e6f10</G>`, "5f3c7a42-0d5e-4c8e-9a41-2b7d1c0e6f10"},
		{`<URI>http://ex01/PowerShell</URI>`, "http://ex01/PowerShell"},
		{`<Version>2.3</Version>`, "2.3"},
		{`<XD>&lt;a/&gt;</XD>`, "<a/>"},
		{`<SBK>Get-Date</SBK>`, "Get-Date"},
		{`<Nil />`, nil},
		{`<SS>AQID</SS>`, &Object{
			TypeNames: []string{"System.Security.SecureString", "System.Object"},
			ToString:  "System.Security.SecureString", HasToString: true, Value: SecureString{1, 2, 3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.xml, func(t *testing.T) {
			got, err := Decode([]byte(tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d values, want 1", len(got))
			}
			if tm, ok := tt.want.(time.Time); ok {
				if g, ok := got[0].(time.Time); !ok || !g.Equal(tm) {
					t.Fatalf("got %#v, want %v", got[0], tm)
				}
				return
			}
			if !reflect.DeepEqual(got[0], tt.want) {
				t.Fatalf("got %#v, want %#v", got[0], tt.want)
			}
		})
	}
}

func TestDecodeRefusesWhatItDoesNotKnow(t *testing.T) {
	tests := map[string]string{
		"unknown primitive":          `<I128>1</I128>`,
		"unknown element in Obj":     `<Obj RefId="0"><Foo/></Obj>`,
		"unknown element in Props":   `<Obj RefId="0"><Props><Foo N="x">1</Foo></Props></Obj>`,
		"unknown element in TN":      `<Obj RefId="0"><TN RefId="0"><X>a</X></TN></Obj>`,
		"bad int":                    `<I32>twelve</I32>`,
		"int out of range":           `<I32>2147483648</I32>`,
		"byte out of range":          `<By>256</By>`,
		"bad bool":                   `<B>yes</B>`,
		"bad date":                   `<DT>yesterday</DT>`,
		"bad duration":               `<TS>5 minutes</TS>`,
		"bad base64":                 `<BA>!!</BA>`,
		"dangling Ref":               `<Ref RefId="9" />`,
		"dangling TNRef":             `<Obj RefId="0"><TNRef RefId="4" /></Obj>`,
		"child in primitive":         `<S>a<S>b</S></S>`,
		"two values in Obj":          `<Obj RefId="0"><I32>1</I32><I32>2</I32></Obj>`,
		"dictionary entry, no key":   `<Obj RefId="0"><DCT><En><S N="Value">v</S></En></DCT></Obj>`,
		"dictionary entry, bad role": `<Obj RefId="0"><DCT><En><S N="Key">k</S><S N="Other">v</S></En></DCT></Obj>`,
		"truncated":                  `<Obj RefId="0"><Props><S N="a">x</S>`,
		"stray text":                 `hello`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := Decode([]byte(doc)); err == nil {
				t.Fatalf("Decode(%s) = %#v, want an error", doc, got)
			}
		})
	}
}

func TestDecodeObject(t *testing.T) {
	doc := `<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
<Obj RefId="0">
  <TN RefId="0"><T>Deserialized.Thing</T><T>Deserialized.System.Object</T></TN>
  <ToString>thing_x0020_one</ToString>
  <Props><S N="Name">a</S><I32 N="Count">3</I32></Props>
  <MS><S N="PSComputerName">ex01</S><S N="Name">from MS</S></MS>
</Obj>
<Obj RefId="1"><TNRef RefId="0" /><ToString>two</ToString>
  <Props><Ref N="Twin" RefId="0" /></Props></Obj>
<Obj RefId="2"><TN RefId="1"><T>System.Collections.Hashtable</T></TN>
  <DCT><En><S N="Key">k</S><I32 N="Value">1</I32></En><En><I32 N="Key">2</I32><Nil N="Value" /></En></DCT></Obj>
<Obj RefId="3"><TN RefId="2"><T>System.Collections.Stack</T></TN><STK /></Obj>
<Obj RefId="4"><QUE><S>q</S></QUE></Obj>
<Obj RefId="5"><IE><S>e</S></IE></Obj>
<Obj RefId="6"><ToString>self</ToString><Props><Ref N="Me" RefId="6" /></Props></Obj>
</Objs>`
	got, err := Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("got %d values, want 7", len(got))
	}
	first := got[0].(*Object)
	if first.ToString != "thing one" || !first.HasToString {
		t.Errorf("ToString = %q", first.ToString)
	}
	wantProps := []Prop{{"Name", "a"}, {"Count", int64(3)}, {"PSComputerName", "ex01"}, {"Name", "from MS"}}
	if !reflect.DeepEqual(first.Props, wantProps) {
		t.Errorf("Props = %#v, want Props then MS: %#v", first.Props, wantProps)
	}
	second := got[1].(*Object)
	if !reflect.DeepEqual(second.TypeNames, first.TypeNames) {
		t.Errorf("TNRef gave %v", second.TypeNames)
	}
	if twin, _ := second.Prop("Twin"); twin != first {
		t.Errorf("Ref did not resolve to the first object: %#v", twin)
	}
	dict := got[2].(*Object).Dict
	if want := []Entry{{"k", int64(1)}, {int64(2), nil}}; !reflect.DeepEqual(dict, want) {
		t.Errorf("Dict = %#v, want %#v", dict, want)
	}
	if l := got[3].(*Object).List; l == nil || len(l) != 0 {
		t.Errorf("empty STK = %#v, want an empty non-nil list", l)
	}
	if l := got[4].(*Object).List; !reflect.DeepEqual(l, []any{"q"}) {
		t.Errorf("QUE = %#v", l)
	}
	if l := got[5].(*Object).List; !reflect.DeepEqual(l, []any{"e"}) {
		t.Errorf("IE = %#v", l)
	}
	me, _ := got[6].(*Object).Prop("Me")
	if o, ok := me.(*Object); !ok || o == got[6] || o.String() != "self" || len(o.Props) != 0 {
		t.Errorf("self reference = %#v, want a member-less stand-in", me)
	}
	// Rows of a self-referencing object must end.
	if _, err := JSON(got, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeBounds(t *testing.T) {
	t.Run("depth", func(t *testing.T) {
		doc := strings.Repeat(`<Obj RefId="0"><Props>`, MaxCLIXMLDepth) + `<S N="x">deep</S>` +
			strings.Repeat(`</Props></Obj>`, MaxCLIXMLDepth)
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), "nesting") {
			t.Fatalf("err = %v, want a nesting error", err)
		}
	})
	t.Run("size", func(t *testing.T) {
		doc := make([]byte, MaxCLIXMLBytes+1)
		if _, err := Decode(doc); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("err = %v, want a size error", err)
		}
	})
	t.Run("reference fan-out", func(t *testing.T) {
		// Each level refers 16 times to the level before: 16^8 values if expanded.
		var b strings.Builder
		b.WriteString(`<Obj RefId="0"><Props><S N="v">x</S></Props></Obj>`)
		for lvl := 1; lvl <= 8; lvl++ {
			b.WriteString(`<Obj RefId="` + itoa(lvl) + `"><Props>`)
			for i := range 16 {
				b.WriteString(`<Ref N="r` + itoa(i) + `" RefId="` + itoa(lvl-1) + `" />`)
			}
			b.WriteString(`</Props></Obj>`)
		}
		if _, err := Decode([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "expand") {
			t.Fatalf("err = %v, want a fan-out error", err)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestEncodeRoundTrip(t *testing.T) {
	when := time.Date(2024, 5, 14, 7, 41, 12, 500000000, time.UTC)
	enum := &Object{
		TypeNames: []string{"Deserialized.Microsoft.Exchange.Data.QueueViewer.QueueStatus", "Deserialized.System.Enum"},
		ToString:  "Retry", HasToString: true, Value: int64(3),
	}
	in := []any{
		"x'; Remove-Mailbox ceo",
		"$(whoami)\r\n_x0041_ \x01 <&>\"",
		int64(-7), uint64(math.MaxUint64), 2.5, true, nil, when,
		Duration(90 * time.Minute), []byte("raw"),
		[]any{"a", int64(1)},
		&Object{
			TypeNames: []string{"Deserialized.Thing"},
			ToString:  "thing", HasToString: true,
			Props: []Prop{{"Status", enum}, {"Same", enum}, {"When", when}, {"Nothing", nil}, {"Odd name_x", "v"}},
		},
		&Object{Props: []Prop{{"bag", "of props"}}},
		&Object{Dict: []Entry{{"k", "v"}}},
	}
	for _, v := range in {
		b, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		want := v
		if l, ok := v.([]any); ok {
			want = &Object{TypeNames: []string{"System.Collections.ArrayList", "System.Object"}, List: l}
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("round trip of %#v\n via %s\n gave %#v", v, b, got)
		}
	}
	doc, err := EncodeDocument(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decode(doc); err != nil || len(got) != len(in) {
		t.Fatalf("document round trip: %d values, %v", len(got), err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	loop := &Object{}
	loop.Props = []Prop{{"self", loop}}
	for name, v := range map[string]any{"cycle": loop, "channel": make(chan int), "map": map[string]any{}} {
		if _, err := Encode(v); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
}

// TestSamples reads the Exchange-shaped samples and checks the rows playbooks see.
func TestSamples(t *testing.T) {
	tests := []struct {
		file string
		sel  []string
		want string
	}{
		{
			file: "get-queue.xml",
			sel:  []string{"Identity", "Status", "MessageCount", "NextHopDomain", "LastError", "NextRetryTime", "MessageCountsPerPriority", "Velocity"},
			want: `[{"Identity":"EX01\\Submission","LastError":null,"MessageCount":0,"MessageCountsPerPriority":[0,0,0,0],"NextHopDomain":"Submission","NextRetryTime":null,"Status":"Ready","Velocity":0},` +
				`{"Identity":"EX01\\3","LastError":"451 4.4.0 Primary target IP address responded with: \"421 4.3.2 Service not available.\" Attempted failover to alternate host, but that did not succeed.\r\nLast endpoint attempted was 203.0.113.25:25","MessageCount":412,"MessageCountsPerPriority":[0,412,0,0],"NextHopDomain":"contoso.example","NextRetryTime":"2024-05-14T07:51:12Z","Status":"Retry","Velocity":-1.25}]`,
		},
		{
			file: "get-transportservice.xml",
			sel:  []string{"Identity", "MessageExpirationTimeout", "TransientFailureRetryInterval", "MaxOutboundConnections", "MaxPerDomainOutboundConnections", "ReceiveProtocolLogMaxFileSize", "WhenChanged", "PSComputerName"},
			want: `[{"Identity":"EX01","MaxOutboundConnections":1000,"MaxPerDomainOutboundConnections":null,"MaxPerDomainOutboundConnectionsIsUnlimited":true,"MessageExpirationTimeout":172800,"PSComputerName":"ex01.contoso.example","ReceiveProtocolLogMaxFileSize":10485760,"TransientFailureRetryInterval":300,"WhenChanged":"2024-03-02T16:20:05Z"}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			items, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := JSON(items, tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("rows\n got %s\nwant %s", got, tt.want)
			}
			// The codec's own output must read back to the same rows.
			for _, it := range items {
				b, err := Encode(it)
				if err != nil {
					t.Fatal(err)
				}
				again, err := Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				r1, _ := JSON([]any{it}, tt.sel)
				r2, _ := JSON(again, tt.sel)
				if string(r1) != string(r2) {
					t.Errorf("re-encoded rows differ:\n%s\n%s", r1, r2)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`<S>a</S>`, `<Obj RefId="0"><Props><Ref N="x" RefId="0"/></Props></Obj>`, `<Objs><I32>1</I32></Objs>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := Decode(data)
		if err != nil {
			return
		}
		if _, err := JSON(items, nil); err != nil && !strings.Contains(err.Error(), "unsupported value") {
			t.Fatal(err)
		}
	})
}

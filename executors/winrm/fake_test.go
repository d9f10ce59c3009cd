package winrm

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

// fakeWSMan is a WS-Management server just real enough for masterzen/winrm:
// Create → Command → Receive×N → Signal → Delete, with basic authentication. Its
// replies follow the envelopes of Windows Server WinRM as captured in the module's
// fixture_test.go (and MS-WSMV 3.1.4): every one, 500 faults included, is
// application/soap+xml; output streams are base64 rsp:Stream elements; the command
// is done at CommandState/Done with rsp:ExitCode.
type fakeWSMan struct {
	t        *testing.T
	srv      *httptest.Server
	user     string
	password string
	// run computes a command's result from what the fake decoded out of it.
	run func(fakeCall) fakeReply
	// faults answers the named action (Create, Command, Receive, …) with the
	// testdata fault of that name and HTTP 500.
	faults map[string]string
	// chunk is how many bytes of each stream one Receive returns (default 16 KiB).
	chunk int

	mu       sync.Mutex
	nextID   int
	open     map[string]bool // shells created and not deleted
	maxOpen  int
	commands map[string]*fakeCommand
	calls    []fakeCall
	log      []string // "Create S1", "Command S1 C2", "Receive C2", "Signal C2", "Delete S1", "Abort C2"
}

// fakeCall is one command as the server saw it.
type fakeCall struct {
	CommandLine string
	Script      string // decoded from -EncodedCommand (UTF-16LE, base64)
	ParamsB64   string // the literal the prelude decodes
	ParamsJSON  []byte // its decoded bytes
}

// fakeReply is what a command produces.
type fakeReply struct {
	Stdout string
	Stderr string
	Exit   int
	// Hang never finishes: each Receive long-polls until the OperationTimeout
	// (then a w:TimedOut fault), a Signal, or the client hanging up.
	Hang bool
	// Delay is spent in the first Receive before any output.
	Delay time.Duration
	// TimedOutPolls answers the first Receives with a w:TimedOut fault, as WinRM
	// does when a command writes nothing within the OperationTimeout.
	TimedOutPolls int
}

type fakeCommand struct {
	id, shell      string
	reply          fakeReply
	stdout, stderr []byte // not yet received
	receives       int
	signalled      chan struct{}
}

// newFake starts a plain-http fake; newTLSFake one with httptest's certificate.
func newFake(t *testing.T, run func(fakeCall) fakeReply) *fakeWSMan {
	return startFake(t, run, (*httptest.Server).Start)
}

func newTLSFake(t *testing.T, run func(fakeCall) fakeReply) *fakeWSMan {
	return startFake(t, run, (*httptest.Server).StartTLS)
}

func startFake(t *testing.T, run func(fakeCall) fakeReply, start func(*httptest.Server)) *fakeWSMan {
	t.Helper()
	f := &fakeWSMan{
		t:        t,
		user:     `CONTOSO\svc-ndrbot`,
		password: "Winter2024!",
		run:      run,
		open:     map[string]bool{},
		commands: map[string]*fakeCommand{},
	}
	f.srv = httptest.NewUnstartedServer(f)
	// A client that rejects the certificate is a test case, not news.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	start(f.srv)
	t.Cleanup(f.srv.Close)
	return f
}

// dial sends every connection to the fake, so targets can use real-looking names.
func (f *fakeWSMan) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, f.srv.Listener.Addr().String())
}

// requestEnvelope is what the fake reads from a client's envelope.
type requestEnvelope struct {
	Header struct {
		Action           string `xml:"Action"`
		MessageID        string `xml:"MessageID"`
		OperationTimeout string `xml:"OperationTimeout"`
		Selectors        []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"SelectorSet>Selector"`
	} `xml:"Header"`
	Body struct {
		CommandLine *struct {
			Command string `xml:"Command"`
		} `xml:"CommandLine"`
		Receive *struct {
			DesiredStream struct {
				CommandID string `xml:"CommandId,attr"`
			} `xml:"DesiredStream"`
		} `xml:"Receive"`
		Signal *struct {
			CommandID string `xml:"CommandId,attr"`
		} `xml:"Signal"`
	} `xml:"Body"`
}

func (e *requestEnvelope) shellID() string {
	for _, s := range e.Header.Selectors {
		if s.Name == "ShellId" {
			return s.Value
		}
	}
	return ""
}

func (f *fakeWSMan) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/wsman" {
		f.t.Errorf("fake: unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != f.user || pass != f.password {
		// HTTP.sys answers like this, with no body and no SOAP content type.
		w.Header().Add("WWW-Authenticate", "Negotiate")
		w.Header().Add("WWW-Authenticate", `Basic realm="WSMAN"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/soap+xml") {
		f.t.Errorf("fake: request Content-Type %q", ct)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var env requestEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		f.t.Errorf("fake: request is not XML: %v\n%s", err, body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	action := env.Header.Action[strings.LastIndex(env.Header.Action, "/")+1:]
	if name, ok := f.faults[action]; ok {
		f.fault(w, name)
		return
	}
	switch action {
	case "Create":
		f.create(w, &env)
	case "Command":
		f.command(w, &env)
	case "Receive":
		f.receive(w, r, &env)
	case "Signal":
		f.signal(w, &env)
	case "Delete":
		f.delete(w, &env)
	default:
		f.t.Errorf("fake: unexpected action %q", env.Header.Action)
		f.fault(w, "fault-internal.xml")
	}
}

func (f *fakeWSMan) create(w http.ResponseWriter, env *requestEnvelope) {
	f.mu.Lock()
	f.nextID++
	id := fmt.Sprintf("%08X-DD32-4F10-89DE-49A060483810", f.nextID)
	f.open[id] = true
	f.maxOpen = max(f.maxOpen, len(f.open))
	f.log = append(f.log, "Create "+id)
	f.mu.Unlock()
	reply(w, fmt.Sprintf(createShellReply, env.Header.MessageID, f.srv.URL, id, id))
}

func (f *fakeWSMan) command(w http.ResponseWriter, env *requestEnvelope) {
	shell := env.shellID()
	if env.Body.CommandLine == nil {
		f.t.Errorf("fake: Command without CommandLine")
		f.fault(w, "fault-internal.xml")
		return
	}
	call, err := decodeCall(env.Body.CommandLine.Command)
	if err != nil {
		f.t.Errorf("fake: %v", err)
		f.fault(w, "fault-internal.xml")
		return
	}
	rep := f.run(call)
	f.mu.Lock()
	if !f.open[shell] {
		f.mu.Unlock()
		f.t.Errorf("fake: Command in unknown shell %q", shell)
		f.fault(w, "fault-internal.xml")
		return
	}
	f.nextID++
	id := fmt.Sprintf("%08X-EC68-4DD6-87E9-030C0048ECC4", f.nextID)
	f.commands[id] = &fakeCommand{
		id: id, shell: shell, reply: rep,
		stdout: []byte(rep.Stdout), stderr: []byte(rep.Stderr),
		signalled: make(chan struct{}),
	}
	f.calls = append(f.calls, call)
	f.log = append(f.log, "Command "+shell+" "+id)
	f.mu.Unlock()
	reply(w, fmt.Sprintf(commandReply, env.Header.MessageID, id))
}

func (f *fakeWSMan) receive(w http.ResponseWriter, r *http.Request, env *requestEnvelope) {
	if env.Body.Receive == nil {
		f.t.Errorf("fake: Receive without body")
		return
	}
	id := env.Body.Receive.DesiredStream.CommandID
	f.mu.Lock()
	cmd := f.commands[id]
	if cmd != nil {
		cmd.receives++
	}
	f.log = append(f.log, "Receive "+id)
	f.mu.Unlock()
	if cmd == nil {
		f.t.Errorf("fake: Receive for unknown command %q", id)
		f.fault(w, "fault-internal.xml")
		return
	}
	if cmd.receives <= cmd.reply.TimedOutPolls {
		f.fault(w, "fault-timedout.xml")
		return
	}
	if cmd.reply.Hang {
		select {
		case <-r.Context().Done(): // the client gave up on the long poll
			f.note("Abort " + id)
			return
		case <-cmd.signalled:
			reply(w, fmt.Sprintf(receiveReply, env.Header.MessageID, "", doneState(id, 1)))
		case <-time.After(parseOperationTimeout(env.Header.OperationTimeout)):
			f.fault(w, "fault-timedout.xml")
		}
		return
	}
	if cmd.receives == cmd.reply.TimedOutPolls+1 && cmd.reply.Delay > 0 {
		select {
		case <-r.Context().Done():
			f.note("Abort " + id)
			return
		case <-time.After(cmd.reply.Delay):
		}
	}

	chunk := cmp.Or(f.chunk, 16<<10)
	f.mu.Lock()
	var streams strings.Builder
	for _, s := range []struct {
		name string
		data *[]byte
	}{{"stdout", &cmd.stdout}, {"stderr", &cmd.stderr}} {
		n := min(len(*s.data), chunk)
		if n > 0 {
			fmt.Fprintf(&streams, `<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>`,
				s.name, id, base64.StdEncoding.EncodeToString((*s.data)[:n]))
			*s.data = (*s.data)[n:]
		}
	}
	state := fmt.Sprintf(`<rsp:CommandState CommandId="%s" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"></rsp:CommandState>`, id)
	if len(cmd.stdout) == 0 && len(cmd.stderr) == 0 {
		fmt.Fprintf(&streams, `<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>`, id, id)
		state = doneState(id, cmd.reply.Exit)
	}
	f.mu.Unlock()
	reply(w, fmt.Sprintf(receiveReply, env.Header.MessageID, streams.String(), state))
}

func (f *fakeWSMan) signal(w http.ResponseWriter, env *requestEnvelope) {
	if env.Body.Signal == nil {
		f.t.Errorf("fake: Signal without body")
		return
	}
	id := env.Body.Signal.CommandID
	f.mu.Lock()
	if cmd := f.commands[id]; cmd != nil {
		select {
		case <-cmd.signalled:
		default:
			close(cmd.signalled)
		}
	} else {
		f.t.Errorf("fake: Signal for unknown command %q", id)
	}
	f.log = append(f.log, "Signal "+id)
	f.mu.Unlock()
	reply(w, fmt.Sprintf(signalReply, env.Header.MessageID))
}

func (f *fakeWSMan) delete(w http.ResponseWriter, env *requestEnvelope) {
	id := env.shellID()
	f.mu.Lock()
	known := f.open[id]
	delete(f.open, id)
	f.log = append(f.log, "Delete "+id)
	f.mu.Unlock()
	if !known {
		f.t.Errorf("fake: Delete of unknown shell %q", id)
	}
	reply(w, fmt.Sprintf(deleteReply, env.Header.MessageID))
}

func (f *fakeWSMan) fault(w http.ResponseWriter, name string) {
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.t.Errorf("fake: %v", err)
	}
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(body)
}

func (f *fakeWSMan) note(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

// snapshot returns the request log, the shells still open and the most that were
// open at once.
func (f *fakeWSMan) snapshot() (log []string, open, maxOpen int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...), len(f.open), f.maxOpen
}

func (f *fakeWSMan) lastCall() fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		f.t.Fatal("fake: no command was run")
	}
	return f.calls[len(f.calls)-1]
}

func reply(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	_, _ = io.WriteString(w, body)
}

func doneState(id string, exit int) string {
	return fmt.Sprintf(`<rsp:CommandState CommandId="%s" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>%d</rsp:ExitCode></rsp:CommandState>`, id, exit)
}

// parseOperationTimeout reads the client's w:OperationTimeout, e.g. PT60.000S.
func parseOperationTimeout(s string) time.Duration {
	secs, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(s, "PT"), "S"), 64)
	if err != nil || secs <= 0 {
		return 60 * time.Second
	}
	return time.Duration(secs * float64(time.Second))
}

var (
	paramsLiteral = regexp.MustCompile(`\[Convert\]::FromBase64String\('([^']*)'\)`)
	base64Only    = regexp.MustCompile(`^[A-Za-z0-9+/=]*$`)
)

// decodeCall recovers the script and its parameter blob from a command line the
// way powershell.exe would: base64, then UTF-16LE.
func decodeCall(line string) (fakeCall, error) {
	call := fakeCall{CommandLine: line}
	b64, ok := strings.CutPrefix(line, "powershell.exe -EncodedCommand ")
	if !ok {
		return call, fmt.Errorf("not an encoded PowerShell command: %.80q", line)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw)%2 != 0 {
		return call, fmt.Errorf("bad -EncodedCommand: %v", err)
	}
	units := make([]uint16, len(raw)/2)
	for i := range units {
		units[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	call.Script = string(utf16.Decode(units))
	m := paramsLiteral.FindStringSubmatch(call.Script)
	if m == nil {
		return call, fmt.Errorf("script has no parameter literal:\n%s", call.Script)
	}
	if !base64Only.MatchString(m[1]) {
		return call, fmt.Errorf("parameter literal is not plain base64: %q", m[1])
	}
	call.ParamsB64 = m[1]
	if call.ParamsJSON, err = base64.StdEncoding.DecodeString(m[1]); err != nil {
		return call, fmt.Errorf("parameter literal: %w", err)
	}
	return call, nil
}

// Reply envelopes, shaped like the module's fixture_test.go captures of WinRM.
const (
	envelopeOpen = `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">`

	createShellReply = envelopeOpen + `<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse</a:Action><a:MessageID>uuid:195078CF-804B-41F7-A246-9CB3C1A41A9A</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header>` +
		`<s:Body><x:ResourceCreated><a:Address>%s/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>` +
		`<rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><rsp:ShellId>%s</rsp:ShellId><rsp:ResourceUri>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</rsp:ResourceUri><rsp:Owner>CONTOSO\svc-ndrbot</rsp:Owner><rsp:ClientIP>10.0.4.20</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell></s:Body></s:Envelope>`

	commandReply = envelopeOpen + `<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse</a:Action><a:MessageID>uuid:D9E108AA-E32B-45E3-8601-E9C70999D3BA</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse></s:Body></s:Envelope>`

	receiveReply = envelopeOpen + `<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action><a:MessageID>uuid:AAD46BD4-6315-4C3C-93D4-94A55773287D</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><rsp:ReceiveResponse>%s%s</rsp:ReceiveResponse></s:Body></s:Envelope>`

	signalReply = envelopeOpen + `<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse</a:Action><a:MessageID>uuid:8A875D1B-B0E3-4B5B-8D2C-8F6A0D4C9A11</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><rsp:SignalResponse/></s:Body></s:Envelope>`

	deleteReply = envelopeOpen + `<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse</a:Action><a:MessageID>uuid:1D5F4B1A-7C4E-4E0B-9E55-0C2C8E7B2F3D</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body></s:Body></s:Envelope>`
)

// Package winrmfake is a WS-Management (WinRM) server for tests, just real enough for
// github.com/masterzen/winrm as the winrm executor drives it: Create → Command →
// Receive×N → Signal → Delete, with basic authentication.
//
// Its replies follow the envelopes of Windows Server WinRM as captured in the
// library's fixture_test.go (and MS-WSMV 3.1.4): every one, 500 faults included, is
// application/soap+xml; output streams are base64 rsp:Stream elements; a command is
// done at CommandState/Done with rsp:ExitCode.
//
// The server decodes each command as powershell.exe would (-EncodedCommand: base64
// of UTF-16LE), recovers the script and the parameter blob the executor's prelude
// turns into $P, and asks the test's handler for the result:
//
//	srv := winrmfake.New(t, func(c winrmfake.Call) winrmfake.Reply {
//		return winrmfake.Reply{Stdout: `[{"Identity":"EX01\\7","MessageCount":1523}]`}
//	})
//
// Lab makes a handler that answers like the simulated Exchange organisation of
// executors/lab.
package winrmfake

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The only credentials the server accepts (basic authentication).
const (
	User     = `CONTOSO\svc-ndrbot`
	Password = "Winter2024!"
)

// defaultChunk is how many bytes of each output stream one Receive returns.
const defaultChunk = 16 << 10

// Call is one command as the server saw it.
type Call struct {
	// Host is the host name the client addressed (its Host header, without port).
	Host string
	// Script is what follows the executor's prelude: the target's preamble, if
	// any, then the action's script.
	Script string
	// Params is $P: the parameter blob decoded from JSON (numbers are float64).
	Params map[string]any
	// ParamsJSON is the blob's exact bytes, decoded from its base64 literal.
	ParamsJSON []byte
	// Raw is the whole script powershell.exe would run, prelude included.
	Raw string
}

// Reply is what a command produces.
type Reply struct {
	Stdout string
	Stderr string
	Exit   int
	// Fault, when set, answers the Command itself with this fault (HTTP 500):
	// the command never starts.
	Fault Fault
	// Hang never finishes: each Receive long-polls until the OperationTimeout
	// (then a w:TimedOut fault), a Signal, or the client hanging up.
	Hang bool
	// Delay is spent in the first Receive before any output.
	Delay time.Duration
	// TimedOutPolls answers the first Receives with a w:TimedOut fault, as WinRM
	// does when a command writes nothing within the OperationTimeout.
	TimedOutPolls int
}

// Server is a running fake. Its methods are safe for concurrent use; its handler
// is called from the server's goroutines, one per command, and may be called
// concurrently.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	handle func(Call) Reply
	refuse Fault // answers every Create when set
	chunk  int

	mu       sync.Mutex
	nextID   int
	open     map[string]bool // shells created and not deleted
	maxOpen  int
	commands map[string]*command
	calls    []Call
	log      []string
}

type command struct {
	reply          Reply
	stdout, stderr []byte // not yet received
	receives       int
	signalled      chan struct{}
}

// Option adjusts a Server.
type Option func(*Server)

// WithChunk sets how many bytes of each stream one Receive returns (16 KiB when
// unset or 0), to spread output over many Receives.
func WithChunk(n int) Option { return func(s *Server) { s.chunk = n } }

// RefuseShells answers every Create with fault f, as WinRM does when the user
// holds too many shells (FaultQuota) or may not open one (FaultAccessDenied).
func RefuseShells(f Fault) Option { return func(s *Server) { s.refuse = f } }

// New starts a plain-http fake whose commands are answered by handle. It accepts
// basic authentication as User with Password only, and is closed when the test ends.
func New(t testing.TB, handle func(Call) Reply, opts ...Option) *Server {
	t.Helper()
	return start(t, handle, opts, (*httptest.Server).Start)
}

// NewTLS starts an https fake with httptest's certificate (see Certificate).
func NewTLS(t testing.TB, handle func(Call) Reply, opts ...Option) *Server {
	t.Helper()
	return start(t, handle, opts, (*httptest.Server).StartTLS)
}

func start(t testing.TB, handle func(Call) Reply, opts []Option, run func(*httptest.Server)) *Server {
	s := &Server{
		t:        t,
		handle:   handle,
		chunk:    defaultChunk,
		open:     map[string]bool{},
		commands: map[string]*command{},
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	// A client that rejects the certificate is a test case, not news.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	run(s.srv)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the endpoint URL, e.g. http://127.0.0.1:41234/wsman.
func (s *Server) URL() string { return s.srv.URL + "/wsman" }

// Certificate is the https fake's certificate (nil for plain http).
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// DialContext connects to the fake whatever address it is given, so a client can
// use real-looking host names.
func (s *Server) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, s.srv.Listener.Addr().String())
}

// Calls returns the commands the server received, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Log returns one line per request, in order: "Create S", "Command S C",
// "Receive C", "Signal C", "Delete S" for shell S and command C; "Create refused:
// F" and "Command S refused: F" for those answered with fault F; "Abort C" when the
// client gave up on a long poll; "Unauthorized" for bad or no credentials; and
// "Unexpected …" for what WinRM would not be asked. An empty log means no request
// reached the server.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// OpenShells is how many shells are created and not yet deleted.
func (s *Server) OpenShells() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// MaxOpenShells is the most shells that were open at once.
func (s *Server) MaxOpenShells() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

// requestEnvelope is what the server reads from a client's envelope.
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

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/wsman" {
		s.note("Unexpected " + r.Method + " " + r.URL.Path)
		s.t.Errorf("winrmfake: unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != User || pass != Password {
		s.note("Unauthorized")
		// HTTP.sys answers like this, with no body and no SOAP content type.
		w.Header().Add("WWW-Authenticate", "Negotiate")
		w.Header().Add("WWW-Authenticate", `Basic realm="WSMAN"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/soap+xml") {
		s.t.Errorf("winrmfake: request Content-Type %q", ct)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var env requestEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		s.t.Errorf("winrmfake: request is not XML: %v\n%s", err, body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	switch action := env.Header.Action[strings.LastIndex(env.Header.Action, "/")+1:]; action {
	case "Create":
		s.create(w, &env)
	case "Command":
		s.command(w, r, &env)
	case "Receive":
		s.receive(w, r, &env)
	case "Signal":
		s.signal(w, &env)
	case "Delete":
		s.delete(w, &env)
	default:
		s.note("Unexpected " + action)
		s.t.Errorf("winrmfake: unexpected action %q", env.Header.Action)
		s.fault(w, FaultInternal)
	}
}

func (s *Server) create(w http.ResponseWriter, env *requestEnvelope) {
	s.mu.Lock()
	if s.refuse != "" {
		s.log = append(s.log, "Create refused: "+string(s.refuse))
		s.mu.Unlock()
		s.fault(w, s.refuse)
		return
	}
	s.nextID++
	id := fmt.Sprintf("%08X-DD32-4F10-89DE-49A060483810", s.nextID)
	s.open[id] = true
	s.maxOpen = max(s.maxOpen, len(s.open))
	s.log = append(s.log, "Create "+id)
	s.mu.Unlock()
	writeSOAP(w, fmt.Sprintf(createShellReply, env.Header.MessageID, s.srv.URL, id, id))
}

func (s *Server) command(w http.ResponseWriter, r *http.Request, env *requestEnvelope) {
	shell := env.shellID()
	if env.Body.CommandLine == nil {
		s.t.Errorf("winrmfake: Command without CommandLine")
		s.fault(w, FaultInternal)
		return
	}
	call, err := ParseCommandLine(env.Body.CommandLine.Command)
	if err != nil {
		s.t.Errorf("winrmfake: %v", err)
		s.fault(w, FaultInternal)
		return
	}
	call.Host = r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		call.Host = h
	}
	s.mu.Lock()
	known := s.open[shell]
	s.mu.Unlock()
	if !known {
		s.t.Errorf("winrmfake: Command in unknown shell %q", shell)
		s.fault(w, FaultInternal)
		return
	}
	rep := s.handle(call) // outside the lock: a handler may take its time

	s.mu.Lock()
	s.calls = append(s.calls, call)
	if rep.Fault != "" {
		s.log = append(s.log, "Command "+shell+" refused: "+string(rep.Fault))
		s.mu.Unlock()
		s.fault(w, rep.Fault)
		return
	}
	s.nextID++
	id := fmt.Sprintf("%08X-EC68-4DD6-87E9-030C0048ECC4", s.nextID)
	s.commands[id] = &command{
		reply:  rep,
		stdout: []byte(rep.Stdout), stderr: []byte(rep.Stderr),
		signalled: make(chan struct{}),
	}
	s.log = append(s.log, "Command "+shell+" "+id)
	s.mu.Unlock()
	writeSOAP(w, fmt.Sprintf(commandReply, env.Header.MessageID, id))
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request, env *requestEnvelope) {
	if env.Body.Receive == nil {
		s.t.Errorf("winrmfake: Receive without body")
		s.fault(w, FaultInternal)
		return
	}
	id := env.Body.Receive.DesiredStream.CommandID
	s.mu.Lock()
	cmd := s.commands[id]
	var receives int
	if cmd != nil {
		cmd.receives++
		receives = cmd.receives
	}
	s.log = append(s.log, "Receive "+id)
	s.mu.Unlock()
	if cmd == nil {
		s.t.Errorf("winrmfake: Receive for unknown command %q", id)
		s.fault(w, FaultInternal)
		return
	}
	if receives <= cmd.reply.TimedOutPolls {
		s.fault(w, FaultTimedOut)
		return
	}
	if cmd.reply.Hang {
		select {
		case <-r.Context().Done(): // the client gave up on the long poll
			s.note("Abort " + id)
		case <-cmd.signalled:
			writeSOAP(w, fmt.Sprintf(receiveReply, env.Header.MessageID, "", doneState(id, 1)))
		case <-time.After(parseOperationTimeout(env.Header.OperationTimeout)):
			s.fault(w, FaultTimedOut)
		}
		return
	}
	if receives == cmd.reply.TimedOutPolls+1 && cmd.reply.Delay > 0 {
		select {
		case <-r.Context().Done():
			s.note("Abort " + id)
			return
		case <-time.After(cmd.reply.Delay):
		}
	}

	chunk := cmp.Or(s.chunk, defaultChunk)
	s.mu.Lock()
	var streams strings.Builder
	for _, st := range []struct {
		name string
		data *[]byte
	}{{"stdout", &cmd.stdout}, {"stderr", &cmd.stderr}} {
		if n := min(len(*st.data), chunk); n > 0 {
			fmt.Fprintf(&streams, `<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>`,
				st.name, id, base64.StdEncoding.EncodeToString((*st.data)[:n]))
			*st.data = (*st.data)[n:]
		}
	}
	state := fmt.Sprintf(`<rsp:CommandState CommandId="%s" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"></rsp:CommandState>`, id)
	if len(cmd.stdout) == 0 && len(cmd.stderr) == 0 {
		fmt.Fprintf(&streams, `<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>`, id, id)
		state = doneState(id, cmd.reply.Exit)
	}
	s.mu.Unlock()
	writeSOAP(w, fmt.Sprintf(receiveReply, env.Header.MessageID, streams.String(), state))
}

func (s *Server) signal(w http.ResponseWriter, env *requestEnvelope) {
	if env.Body.Signal == nil {
		s.t.Errorf("winrmfake: Signal without body")
		s.fault(w, FaultInternal)
		return
	}
	id := env.Body.Signal.CommandID
	s.mu.Lock()
	cmd := s.commands[id]
	if cmd != nil {
		select {
		case <-cmd.signalled:
		default:
			close(cmd.signalled)
		}
	}
	s.log = append(s.log, "Signal "+id)
	s.mu.Unlock()
	if cmd == nil {
		s.t.Errorf("winrmfake: Signal for unknown command %q", id)
	}
	writeSOAP(w, SignalResponse(env.Header.MessageID))
}

func (s *Server) delete(w http.ResponseWriter, env *requestEnvelope) {
	id := env.shellID()
	s.mu.Lock()
	known := s.open[id]
	delete(s.open, id)
	s.log = append(s.log, "Delete "+id)
	s.mu.Unlock()
	if !known {
		s.t.Errorf("winrmfake: Delete of unknown shell %q", id)
	}
	writeSOAP(w, fmt.Sprintf(deleteReply, env.Header.MessageID))
}

// fault answers with a SOAP fault and HTTP 500, as WinRM does.
func (s *Server) fault(w http.ResponseWriter, f Fault) {
	body := f.Body()
	if body == "" {
		s.t.Errorf("winrmfake: unknown fault %q", f)
	}
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, body)
}

func (s *Server) note(line string) {
	s.mu.Lock()
	s.log = append(s.log, line)
	s.mu.Unlock()
}

func writeSOAP(w http.ResponseWriter, body string) {
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

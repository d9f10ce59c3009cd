// Package psrpfake is a WS-Management server that speaks the server side of
// PowerShell Remoting (PSRP) well enough for the psrp executor's tests: a shell
// Create carrying the opening fragments, Receive on the shell for the pool's
// state, a Command carrying CREATE_PIPELINE, Receive on the command for output,
// Signal, and Delete.
//
// Where each shape comes from:
//   - envelopes, actions, rsp:Shell/CommandLine/Receive/Signal bodies, the
//     ShellId selector, rsp:Stream as base64 and rsp:CommandState:
//     [MS-WSMV] 3.1.4.1 (Create), 3.1.4.11 (Command), 3.1.4.14 (Receive),
//     3.1.4.12 (Signal), 3.1.4.2 (Delete); faults as HTTP 500 with a
//     SOAP 1.2 Fault and a WSManFault detail: [MS-WSMV] 2.2.4.x and 3.1.4.1.x;
//   - the PSRP mapping onto them (creationXml in the Create body, the pipeline
//     id as CommandId, CREATE_PIPELINE base64 in rsp:Arguments, the
//     powershell/signal/crtl_c stop signal): [MS-PSRP] 3.1.5.3 and 3.2.5.3;
//   - fragments and messages: [MS-PSRP] 2.2.4 and 2.2.1; the message bodies:
//     2.2.2.1 (SESSION_CAPABILITY), 2.2.2.9 (RUNSPACEPOOL_STATE), 2.2.2.13
//     (APPLICATION_PRIVATE_DATA), 2.2.2.10 (CREATE_PIPELINE), 2.2.2.19–22
//     (output, error, state, warning).
//
// No-language endpoints (Exchange's /PowerShell, JEA) refuse script text; so does
// the fake, with an error record like theirs.
//
// Authentication is Basic by default. WithKerberos puts krbtest's acceptor in
// front instead — Kerberos only, as the out-of-box /PowerShell virtual directory
// is — and with WithPlainHTTP every envelope then travels sealed.
package psrpfake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/executors/psrp/internal/wire"
	"github.com/ndrbot/ndrbot/executors/wsman/kerberos/krbtest"
)

// Fixed credentials the fake accepts (basic auth, unless WithKerberos).
const (
	User     = "ndrbot"
	Password = "fake-password"
)

// Param is one parameter as it arrived.
type Param struct {
	Name  string // empty for a positional argument
	Value any    // decoded (psobj model)
	Raw   []byte // the CLIXML of its value element, byte for byte as sent
}

// Command is one pipeline as the client asked for it.
type Command struct {
	// User is who sent it: the Basic user name, or with WithKerberos the
	// authenticated principal ("svc-ndrbot@CORP.EXAMPLE.COM").
	User        string
	Name        string
	IsScript    bool
	Params      []Param
	ResourceURI string
}

// Failure is an error record the handler reports.
type Failure struct {
	Message  string
	Category string // ErrorCategory name, e.g. "ObjectNotFound"
	Target   string
}

// Result is what a handler answers.
type Result struct {
	Output   []any // psobj values
	Errors   []Failure
	Warnings []string
	// Delay holds the answer back, as a slow cmdlet would; a stopped pipeline
	// ends it early.
	Delay time.Duration
}

// Handler runs one command. ctx ends when the client stops the pipeline or
// closes the pool.
type Handler func(ctx context.Context, host string, cmd Command) Result

// Stats counts what happened on one endpoint (host).
type Stats struct {
	PoolsOpened, PoolsClosed int
	PipelinesNow             int
	PipelinesMax             int
	Pipelines                int
	Signals                  []string // signal codes, in order
}

// Option adjusts a fake.
type Option func(*options)

type options struct {
	plain   bool
	realm   *krbtest.Realm
	spn     string
	krbOpts []krbtest.Option
}

// WithPlainHTTP serves http instead of https. With Kerberos that means
// [MS-WSMV] message encryption; with Basic, clear text.
func WithPlainHTTP() Option {
	return func(o *options) { o.plain = true }
}

// WithKerberos requires Kerberos for spn (e.g. "HTTP/ex01.corp.example.com",
// created with realm.AddService) instead of Basic: AP-REQs are verified against
// realm's KDC and, over http, requests are unsealed and replies sealed. opts
// pass the acceptor's quirks and failures (krbtest.WithScheme, …).
func WithKerberos(realm *krbtest.Realm, spn string, opts ...krbtest.Option) Option {
	return func(o *options) { o.realm, o.spn, o.krbOpts = realm, spn, opts }
}

// Server is a running fake.
type Server struct {
	*httptest.Server
	handler  Handler
	acceptor *krbtest.Acceptor

	mu       sync.Mutex
	shells   map[string]*shell
	stats    map[string]*Stats
	breakNew bool
	wg       sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc
}

type shell struct {
	id, host, uri string
	rpid          wire.GUID
	pending       [][]byte // messages for the first shell Receive
	cmds          map[string]*pipeline
	broken        bool
	objectID      uint64
}

type pipeline struct {
	id     string
	pid    wire.GUID
	cancel context.CancelFunc
	done   chan struct{} // closed when out is final
	out    [][]byte      // messages, encoded
}

// New starts a fake answering every command with h: over TLS with Basic
// authentication unless opts say otherwise.
func New(h Handler, opts ...Option) *Server {
	var o options
	for _, f := range opts {
		f(&o)
	}
	s := &Server{handler: h, shells: map[string]*shell{}, stats: map[string]*Stats{}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	if o.realm != nil {
		s.acceptor = o.realm.Handler(o.spn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.serve(w, r, krbtest.ClientPrincipal(r.Context()))
		}), o.krbOpts...)
		s.Server = httptest.NewUnstartedServer(s.acceptor)
		s.acceptor.Attach(s.Server)
	} else {
		s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.basic))
	}
	if o.plain {
		s.Start()
	} else {
		s.StartTLS()
	}
	return s
}

// DialContext connects to the fake whatever address is asked for, so a client
// can address it by real-looking host names (ex01.contoso.com), one fake
// serving every host (tell them apart by the Host header, as the handler does).
func (s *Server) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, s.Listener.Addr().String())
}

// Acceptor is the Kerberos side of a fake made WithKerberos (handshakes, the
// decrypted envelopes, the raw bytes on the wire), or nil.
func (s *Server) Acceptor() *krbtest.Acceptor { return s.acceptor }

// Close stops every running pipeline, waits for them and shuts the server down.
func (s *Server) Close() {
	s.stop()
	s.wg.Wait()
	s.Server.Close()
}

// Stats returns a copy of the counters of host.
func (s *Server) Stats(host string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.statsLocked(host)
	out := *st
	out.Signals = append([]string(nil), st.Signals...)
	return out
}

// OpenPools counts shells not yet deleted, on every host.
func (s *Server) OpenPools() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.shells)
}

// BreakPools makes every open pool answer as one whose server side went away (an
// IIS recycle on Exchange): the next Command on it is refused.
func (s *Server) BreakPools() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.shells {
		sh.broken = true
	}
}

// BreakNewPools makes pools opened from now on broken as well.
func (s *Server) BreakNewPools(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.breakNew = on
}

func (s *Server) statsLocked(host string) *Stats {
	st, ok := s.stats[host]
	if !ok {
		st = &Stats{}
		s.stats[host] = st
	}
	return st
}

// envelope is the part of a request the fake reads.
type envelope struct {
	Header struct {
		Action      string `xml:"Action"`
		ResourceURI string `xml:"ResourceURI"`
		MessageID   string `xml:"MessageID"`
		Timeout     string `xml:"OperationTimeout"`
		Selectors   []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"SelectorSet>Selector"`
	} `xml:"Header"`
	Body struct {
		Shell *struct {
			ShellID     string `xml:"ShellId,attr"`
			CreationXML string `xml:"creationXml"`
		} `xml:"Shell"`
		CommandLine *struct {
			CommandID string   `xml:"CommandId,attr"`
			Arguments []string `xml:"Arguments"`
		} `xml:"CommandLine"`
		Receive *struct {
			Stream struct {
				CommandID string `xml:"CommandId,attr"`
			} `xml:"DesiredStream"`
		} `xml:"Receive"`
		Signal *struct {
			CommandID string `xml:"CommandId,attr"`
			Code      string `xml:"Code"`
		} `xml:"Signal"`
	} `xml:"Body"`
}

func (e *envelope) shellID() string {
	for _, sel := range e.Header.Selectors {
		if sel.Name == "ShellId" {
			return sel.Value
		}
	}
	return ""
}

const (
	actionCreate  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	actionDelete  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	actionCommand = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
	actionReceive = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
	actionSignal  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
)

// basic checks Basic credentials before serve.
func (s *Server) basic(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != User || pass != Password {
		w.Header().Set("WWW-Authenticate", `Basic realm="WSMAN"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.serve(w, r, user)
}

// serve answers an authenticated request of user.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, user string) {
	if r.Method != http.MethodPost || !strings.Contains(r.Header.Get("Content-Type"), "application/soap+xml") {
		http.Error(w, "want a SOAP POST", http.StatusUnsupportedMediaType)
		return
	}
	var env envelope
	if err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&env); err != nil {
		fault(w, "", "s:Sender", "w:InvalidMessageInformationHeader", "bad envelope: "+err.Error())
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if !strings.HasPrefix(env.Header.ResourceURI, "http://schemas.microsoft.com/powershell/") {
		fault(w, env.Header.MessageID, "s:Sender", "w:DestinationUnreachable", "not a PowerShell resource URI: "+env.Header.ResourceURI)
		return
	}
	switch env.Header.Action {
	case actionCreate:
		s.create(w, host, &env)
	case actionCommand:
		s.command(w, user, &env)
	case actionReceive:
		s.receive(w, r.Context(), &env)
	case actionSignal:
		s.signal(w, &env)
	case actionDelete:
		s.delete(w, &env)
	default:
		fault(w, env.Header.MessageID, "s:Sender", "a:ActionNotSupported", "action "+env.Header.Action)
	}
}

func (s *Server) create(w http.ResponseWriter, host string, env *envelope) {
	b := env.Body.Shell
	if b == nil || b.ShellID == "" || b.CreationXML == "" {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "Create without rsp:Shell, ShellId or creationXml")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b.CreationXML))
	if err != nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "creationXml: "+err.Error())
		return
	}
	var a wire.Assembler
	msgs, err := a.Feed(raw)
	if err == nil && (len(msgs) != 2 || msgs[0].Type != wire.SessionCapability || msgs[1].Type != wire.InitRunspacePool) {
		err = fmt.Errorf("want SESSION_CAPABILITY and INIT_RUNSPACEPOOL, got %d messages", len(msgs))
	}
	if err == nil {
		_, err = psobj.Decode(msgs[1].Data)
	}
	if err != nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "creationXml: "+err.Error())
		return
	}
	rpid := msgs[0].RPID
	sh := &shell{id: strings.ToUpper(b.ShellID), host: host, uri: env.Header.ResourceURI, rpid: rpid, cmds: map[string]*pipeline{}}
	for _, m := range []wire.Message{
		{Destination: wire.ToClient, Type: wire.SessionCapability, RPID: rpid, Data: wire.SessionCapabilityData()},
		{Destination: wire.ToClient, Type: wire.ApplicationPrivateData, RPID: rpid, Data: wire.ApplicationPrivateDataData()},
		{Destination: wire.ToClient, Type: wire.RunspacePoolState, RPID: rpid, Data: wire.StateData(false, wire.PoolOpened, nil)},
	} {
		sh.pending = append(sh.pending, m.Encode())
	}
	s.mu.Lock()
	sh.broken = s.breakNew
	s.shells[sh.id] = sh
	s.statsLocked(host).PoolsOpened++
	s.mu.Unlock()
	reply(w, env.Header.MessageID, "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", fmt.Sprintf(
		`<x:ResourceCreated><a:Address>https://%s/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI>`+
			`<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>`+
			`<rsp:Shell><rsp:ShellId>%s</rsp:ShellId><rsp:ResourceUri>%s</rsp:ResourceUri><rsp:State>Connected</rsp:State>`+
			`<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams></rsp:Shell>`,
		host, sh.uri, sh.id, sh.id, sh.uri))
}

func (s *Server) lookup(w http.ResponseWriter, env *envelope) *shell {
	s.mu.Lock()
	sh := s.shells[strings.ToUpper(env.shellID())]
	s.mu.Unlock()
	if sh == nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidSelectors",
			"The request for the Windows Remote Shell with ShellId "+env.shellID()+" failed because the shell was not found on the server.")
	}
	return sh
}

func (s *Server) command(w http.ResponseWriter, user string, env *envelope) {
	sh := s.lookup(w, env)
	if sh == nil {
		return
	}
	s.mu.Lock()
	broken := sh.broken
	s.mu.Unlock()
	if broken {
		// What WinRM answers once the PowerShell host behind a shell is gone.
		fault(w, env.Header.MessageID, "s:Receiver", "w:InternalError",
			"The WS-Management service cannot process the request. The runspace pool is in the Broken state.")
		return
	}
	cl := env.Body.CommandLine
	if cl == nil || cl.CommandID == "" || len(cl.Arguments) != 1 {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "Command wants a CommandId and one rsp:Arguments")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cl.Arguments[0]))
	var msgs []wire.Message
	if err == nil {
		var a wire.Assembler
		msgs, err = a.Feed(raw)
	}
	if err == nil && (len(msgs) != 1 || msgs[0].Type != wire.CreatePipeline) {
		err = fmt.Errorf("want one CREATE_PIPELINE message, got %d", len(msgs))
	}
	var cmd Command
	if err == nil {
		cmd, err = parseCreatePipeline(msgs[0].Data)
	}
	if err != nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "CREATE_PIPELINE: "+err.Error())
		return
	}
	cmd.ResourceURI, cmd.User = sh.uri, user
	id := strings.ToUpper(cl.CommandID)
	ctx, cancel := context.WithCancel(s.ctx)
	p := &pipeline{id: id, pid: msgs[0].PID, cancel: cancel, done: make(chan struct{})}

	s.mu.Lock()
	sh.cmds[id] = p
	st := s.statsLocked(sh.host)
	st.Pipelines++
	st.PipelinesNow++
	st.PipelinesMax = max(st.PipelinesMax, st.PipelinesNow)
	s.mu.Unlock()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		out := s.run(ctx, sh, p, cmd)
		s.mu.Lock()
		p.out = out
		s.statsLocked(sh.host).PipelinesNow--
		s.mu.Unlock()
		close(p.done)
	}()
	reply(w, env.Header.MessageID, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse",
		`<rsp:CommandResponse><rsp:CommandId>`+id+`</rsp:CommandId></rsp:CommandResponse>`)
}

// run calls the handler and turns its result into PSRP messages.
func (s *Server) run(ctx context.Context, sh *shell, p *pipeline, cmd Command) [][]byte {
	msg := func(typ uint32, data []byte) []byte {
		return wire.Message{Destination: wire.ToClient, Type: typ, RPID: sh.rpid, PID: p.pid, Data: data}.Encode()
	}
	if cmd.IsScript {
		return [][]byte{
			msg(wire.ErrorRecord, wire.ErrorRecordData(wire.Failure{
				Message:  "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
				Category: "ParserError", Target: cmd.Name, ErrorID: "ScriptsNotAllowed",
			})),
			msg(wire.PipelineState, wire.StateData(true, wire.PipelineFailed, nil)),
		}
	}
	res := s.handler(ctx, sh.host, cmd)
	if res.Delay > 0 {
		t := time.NewTimer(res.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return [][]byte{msg(wire.PipelineState, wire.StateData(true, wire.PipelineStopped, wire.ErrorRecordObject(wire.Failure{
				Message: "The pipeline has been stopped.", Category: "OperationStopped", ErrorID: "PipelineStopped",
			})))}
		}
	}
	var out [][]byte
	for _, w := range res.Warnings {
		out = append(out, msg(wire.WarningRecord, wire.InformationalRecordData(w)))
	}
	for _, o := range res.Output {
		b, err := psobj.Encode(o)
		if err != nil {
			b = wire.ErrorRecordData(wire.Failure{Message: "fake: cannot encode output: " + err.Error()})
			out = append(out, msg(wire.ErrorRecord, b))
			continue
		}
		out = append(out, msg(wire.PipelineOutput, b))
	}
	for _, f := range res.Errors {
		out = append(out, msg(wire.ErrorRecord, wire.ErrorRecordData(wire.Failure{
			Message: f.Message, Category: f.Category, Target: f.Target, ErrorID: "FakeError," + cmd.Name,
		})))
	}
	state := int32(wire.PipelineCompleted)
	if len(res.Errors) > 0 {
		state = wire.PipelineFailed
	}
	return append(out, msg(wire.PipelineState, wire.StateData(true, state, nil)))
}

func (s *Server) receive(w http.ResponseWriter, ctx context.Context, env *envelope) {
	sh := s.lookup(w, env)
	if sh == nil {
		return
	}
	if env.Body.Receive == nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "Receive without rsp:Receive")
		return
	}
	id := strings.ToUpper(env.Body.Receive.Stream.CommandID)
	if id == "" {
		// The pool's own stream: the opening messages, once.
		s.mu.Lock()
		pending := sh.pending
		sh.pending = nil
		s.mu.Unlock()
		if len(pending) == 0 {
			fault(w, env.Header.MessageID, "s:Receiver", "w:TimedOut", "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.")
			return
		}
		reply(w, env.Header.MessageID, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
			"<rsp:ReceiveResponse>"+s.streams(sh, pending, "")+"</rsp:ReceiveResponse>")
		return
	}
	s.mu.Lock()
	p := sh.cmds[id]
	s.mu.Unlock()
	if p == nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "no command "+id)
		return
	}
	wait := operationTimeout(env.Header.Timeout)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		fault(w, env.Header.MessageID, "s:Receiver", "w:TimedOut", "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.")
		return
	case <-ctx.Done():
		return
	}
	s.mu.Lock()
	out := p.out
	s.mu.Unlock()
	reply(w, env.Header.MessageID, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
		"<rsp:ReceiveResponse>"+s.streams(sh, out, id)+
			`<rsp:CommandState CommandId="`+id+`" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"/>`+
			"</rsp:ReceiveResponse>")
}

// streams writes each message as its own fragment in its own rsp:Stream.
func (s *Server) streams(sh *shell, msgs [][]byte, commandID string) string {
	var b strings.Builder
	for _, m := range msgs {
		s.mu.Lock()
		sh.objectID++
		obj := sh.objectID
		s.mu.Unlock()
		attr := ""
		if commandID != "" {
			attr = ` CommandId="` + commandID + `"`
		}
		// Small fragments, so the client's reassembly is exercised.
		b.WriteString(`<rsp:Stream Name="stdout"` + attr + `>` + base64.StdEncoding.EncodeToString(wire.Fragment(obj, m, 4096)) + `</rsp:Stream>`)
	}
	return b.String()
}

func operationTimeout(s string) time.Duration {
	var secs float64
	if _, err := fmt.Sscanf(s, "PT%fS", &secs); err != nil || secs <= 0 {
		return 60 * time.Second
	}
	return time.Duration(secs * float64(time.Second))
}

func (s *Server) signal(w http.ResponseWriter, env *envelope) {
	sh := s.lookup(w, env)
	if sh == nil {
		return
	}
	sig := env.Body.Signal
	if sig == nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "Signal without rsp:Signal")
		return
	}
	id := strings.ToUpper(sig.CommandID)
	s.mu.Lock()
	p := sh.cmds[id]
	st := s.statsLocked(sh.host)
	st.Signals = append(st.Signals, sig.Code)
	if p != nil && strings.HasSuffix(sig.Code, "/signal/terminate") {
		delete(sh.cmds, id)
	}
	s.mu.Unlock()
	if p == nil {
		fault(w, env.Header.MessageID, "s:Sender", "w:InvalidParameter", "no command "+id)
		return
	}
	p.cancel()
	reply(w, env.Header.MessageID, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse", "<rsp:SignalResponse/>")
}

func (s *Server) delete(w http.ResponseWriter, env *envelope) {
	sh := s.lookup(w, env)
	if sh == nil {
		return
	}
	s.mu.Lock()
	delete(s.shells, sh.id)
	s.statsLocked(sh.host).PoolsClosed++
	cmds := sh.cmds
	sh.cmds = map[string]*pipeline{}
	s.mu.Unlock()
	for _, p := range cmds {
		p.cancel()
	}
	reply(w, env.Header.MessageID, "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "")
}

const envelopeStart = `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" ` +
	`xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" ` +
	`xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" ` +
	`xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">`

func reply(w http.ResponseWriter, relatesTo, action, body string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	fmt.Fprintf(w, `%s<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID>`+
		`<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header>`+
		`<s:Body>%s</s:Body></s:Envelope>`, envelopeStart, action, messageID(), xmlText(relatesTo), body)
}

func fault(w http.ResponseWriter, relatesTo, code, subcode, reason string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `%s<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>`+
		`<a:MessageID>uuid:%s</a:MessageID><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><s:Fault>`+
		`<s:Code><s:Value>%s</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>`+
		`<s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason>`+
		`<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" Machine="fake">`+
		`<f:Message>%s</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>`,
		envelopeStart, messageID(), xmlText(relatesTo), code, subcode, xmlText(reason), xmlText(reason))
}

func messageID() string {
	g, err := wire.NewGUID()
	if err != nil {
		return "00000000-0000-0000-0000-000000000000"
	}
	return g.String()
}

func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// parseCreatePipeline reads the command of a CREATE_PIPELINE body, keeping each
// parameter value's CLIXML as it arrived.
func parseCreatePipeline(data []byte) (Command, error) {
	var cmd Command
	items, err := psobj.Decode(data)
	if err != nil {
		return cmd, err
	}
	if len(items) != 1 {
		return cmd, fmt.Errorf("%d values", len(items))
	}
	get := func(v any, name string) any {
		if o, ok := v.(*psobj.Object); ok {
			x, _ := o.Prop(name)
			return x
		}
		return nil
	}
	cmds, _ := get(get(items[0], "PowerShell"), "Cmds").(*psobj.Object)
	if cmds == nil || len(cmds.List) != 1 {
		return cmd, errors.New("want exactly one command in PowerShell.Cmds")
	}
	c := cmds.List[0]
	cmd.Name, _ = get(c, "Cmd").(string)
	isScript, ok := get(c, "IsScript").(bool)
	if !ok {
		return cmd, errors.New("IsScript is not a boolean")
	}
	cmd.IsScript = isScript
	args, _ := get(c, "Args").(*psobj.Object)
	if args == nil {
		return cmd, errors.New("no Args list")
	}
	raws, err := rawValues(data)
	if err != nil {
		return cmd, err
	}
	if len(raws) != len(args.List) {
		return cmd, fmt.Errorf("%d argument values for %d arguments", len(raws), len(args.List))
	}
	for i, a := range args.List {
		name, _ := get(a, "N").(string)
		cmd.Params = append(cmd.Params, Param{Name: name, Value: get(a, "V"), Raw: raws[i]})
	}
	return cmd, nil
}

// rawValues returns the bytes of every element named N="V" (argument values,
// [MS-PSRP] 2.2.3.13), in document order.
func rawValues(data []byte) ([][]byte, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	d := xml.NewDecoder(bytes.NewReader(data))
	var out [][]byte
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Local == "N" && a.Value == "V" {
				if err := d.Skip(); err != nil {
					return nil, err
				}
				out = append(out, data[start:d.InputOffset()])
				break
			}
		}
	}
}

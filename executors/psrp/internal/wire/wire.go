// Package wire is PSRP below the WS-Management layer, shared by the executor and
// its fake: fragments ([MS-PSRP] 2.2.4), messages (2.2.1) and the few message
// bodies a cmdlet-only client and server exchange (2.2.2, 2.2.3).
package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Destinations of a message ([MS-PSRP] 2.2.1).
const (
	ToClient uint32 = 1
	ToServer uint32 = 2
)

// Message types used here ([MS-PSRP] 2.2.1).
const (
	SessionCapability      uint32 = 0x00010002
	InitRunspacePool       uint32 = 0x00010004
	RunspacePoolState      uint32 = 0x00021005
	CreatePipeline         uint32 = 0x00021006
	ApplicationPrivateData uint32 = 0x00021009
	RunspacePoolHostCall   uint32 = 0x00021100
	PipelineOutput         uint32 = 0x00041004
	ErrorRecord            uint32 = 0x00041005
	PipelineState          uint32 = 0x00041006
	DebugRecord            uint32 = 0x00041007
	VerboseRecord          uint32 = 0x00041008
	WarningRecord          uint32 = 0x00041009
	ProgressRecord         uint32 = 0x00041010
	InformationRecord      uint32 = 0x00041011
	PipelineHostCall       uint32 = 0x00041100
)

// Runspace pool states ([MS-PSRP] 2.2.3.4).
const (
	PoolOpened = 2
	PoolClosed = 3
	PoolBroken = 5
)

// Pipeline states ([MS-PSRP] 2.2.3.5).
const (
	PipelineRunning   = 1
	PipelineStopped   = 3
	PipelineCompleted = 4
	PipelineFailed    = 5
)

// GUID is a runspace pool or pipeline id in RFC 4122 byte order.
type GUID [16]byte

// NewGUID returns a random (version 4) GUID.
func NewGUID() (GUID, error) {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		return g, err
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

// String is the upper-case form WS-Management carries as ShellId and CommandId.
func (g GUID) String() string {
	h := strings.ToUpper(hex.EncodeToString(g[:]))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ParseGUID reads the textual form, any case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 || len(s) != 36 {
		return g, fmt.Errorf("%q is not a GUID", s)
	}
	copy(g[:], b)
	return g, nil
}

// dotnet swaps the first three fields: the message header carries GUIDs as
// .NET's Guid.ToByteArray writes them ([MS-PSRP] 2.2.1, RPID and PID).
func (g GUID) dotnet() []byte {
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = g[3], g[2], g[1], g[0]
	b[4], b[5], b[6], b[7] = g[5], g[4], g[7], g[6]
	copy(b[8:], g[8:])
	return b
}

func fromDotnet(b []byte) GUID {
	var g GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5], g[6], g[7] = b[5], b[4], b[7], b[6]
	copy(g[8:], b[8:])
	return g
}

// Message is one PSRP message.
type Message struct {
	Destination uint32
	Type        uint32
	RPID, PID   GUID
	Data        []byte // CLIXML, without the byte order mark
}

const (
	messageHeader  = 40
	fragmentHeader = 21
)

var bom = []byte("\xef\xbb\xbf")

// Encode lays the message out as [MS-PSRP] 2.2.1: little-endian destination and
// type, the two GUIDs, then the UTF-8 data with its byte order mark.
func (m Message) Encode() []byte {
	b := make([]byte, messageHeader, messageHeader+len(bom)+len(m.Data))
	binary.LittleEndian.PutUint32(b[0:], m.Destination)
	binary.LittleEndian.PutUint32(b[4:], m.Type)
	copy(b[8:], m.RPID.dotnet())
	copy(b[24:], m.PID.dotnet())
	b = append(b, bom...)
	return append(b, m.Data...)
}

// DecodeMessage reads one message.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) < messageHeader {
		return Message{}, fmt.Errorf("psrp message of %d bytes is shorter than its header", len(b))
	}
	return Message{
		Destination: binary.LittleEndian.Uint32(b[0:]),
		Type:        binary.LittleEndian.Uint32(b[4:]),
		RPID:        fromDotnet(b[8:24]),
		PID:         fromDotnet(b[24:40]),
		Data:        bytes.TrimPrefix(b[messageHeader:], bom),
	}, nil
}

// Fragment splits one encoded message into fragments of at most maxBlob payload
// bytes each ([MS-PSRP] 2.2.4: big-endian object id, fragment id, start/end flags,
// blob length), concatenated as a WS-Man stream carries them.
func Fragment(objectID uint64, msg []byte, maxBlob int) []byte {
	var out []byte
	for id, off := uint64(0), 0; ; id++ {
		end := min(off+maxBlob, len(msg))
		var flags byte
		if off == 0 {
			flags |= 1
		}
		if end == len(msg) {
			flags |= 2
		}
		h := make([]byte, fragmentHeader)
		binary.BigEndian.PutUint64(h[0:], objectID)
		binary.BigEndian.PutUint64(h[8:], id)
		h[16] = flags
		binary.BigEndian.PutUint32(h[17:], uint32(end-off))
		out = append(append(out, h...), msg[off:end]...)
		if end == len(msg) {
			return out
		}
		off = end
	}
}

// Assembler joins fragments back into messages. Fragments of one message arrive
// in order (the sender writes them so, and WS-Man keeps order), so anything else
// is an error; the bytes held for unfinished messages are bounded.
type Assembler struct {
	// MaxBytes bounds the bytes held for messages being assembled.
	MaxBytes int
	pending  map[uint64]*partial
	held     int
}

type partial struct {
	next uint64
	data []byte
}

// ErrTooBig is returned when unfinished messages exceed MaxBytes.
var ErrTooBig = errors.New("psrp message exceeds the size limit")

// Feed takes the bytes of one WS-Man stream element (one or more fragments) and
// returns the messages it completes.
func (a *Assembler) Feed(b []byte) ([]Message, error) {
	if a.pending == nil {
		a.pending = map[uint64]*partial{}
	}
	var out []Message
	for len(b) > 0 {
		if len(b) < fragmentHeader {
			return out, fmt.Errorf("psrp fragment of %d bytes is shorter than its header", len(b))
		}
		obj := binary.BigEndian.Uint64(b[0:])
		id := binary.BigEndian.Uint64(b[8:])
		start, end := b[16]&1 != 0, b[16]&2 != 0
		n := binary.BigEndian.Uint32(b[17:])
		if uint64(len(b)-fragmentHeader) < uint64(n) {
			return out, fmt.Errorf("psrp fragment claims %d bytes, has %d", n, len(b)-fragmentHeader)
		}
		blob := b[fragmentHeader : fragmentHeader+int(n)]
		b = b[fragmentHeader+int(n):]

		p := a.pending[obj]
		switch {
		case start && p != nil:
			return out, fmt.Errorf("psrp object %d started twice", obj)
		case start:
			p = &partial{}
			a.pending[obj] = p
		case p == nil:
			return out, fmt.Errorf("psrp fragment %d of object %d without its start", id, obj)
		}
		if id != p.next {
			return out, fmt.Errorf("psrp object %d: fragment %d arrived, want %d", obj, id, p.next)
		}
		p.next++
		if a.held += len(blob); a.MaxBytes > 0 && a.held > a.MaxBytes {
			return out, fmt.Errorf("%w (%d bytes)", ErrTooBig, a.MaxBytes)
		}
		p.data = append(p.data, blob...)
		if !end {
			continue
		}
		delete(a.pending, obj)
		a.held -= len(p.data)
		m, err := DecodeMessage(p.data)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// enum is an enum value as PowerShell serializes it: type names, name, number.
func enum(typeName, name string, n int32) *psobj.Object {
	return &psobj.Object{
		TypeNames:   []string{typeName, "System.Enum", "System.ValueType", "System.Object"},
		ToString:    name,
		HasToString: true,
		Value:       n,
	}
}

// bag is a property bag (<MS>), the shape of every PSRP message body.
func bag(props ...psobj.Prop) *psobj.Object { return &psobj.Object{Props: props} }

func encode(o *psobj.Object) []byte {
	b, err := psobj.Encode(o)
	if err != nil {
		// Only our own constant-shaped values reach here.
		panic("psrp: encoding a message body: " + err.Error())
	}
	return b
}

// SessionCapabilityData is the body of SESSION_CAPABILITY ([MS-PSRP] 2.2.2.1),
// the same for client and server: protocol 2.3 as PowerShell 5.1 and Exchange
// speak it.
func SessionCapabilityData() []byte {
	return encode(bag(
		psobj.Prop{Name: "protocolversion", Value: psobj.Version("2.3")},
		psobj.Prop{Name: "PSVersion", Value: psobj.Version("2.0")},
		psobj.Prop{Name: "SerializationVersion", Value: psobj.Version("1.1.0.1")},
	))
}

// hostInfo says the client has no host ([MS-PSRP] 2.2.3.14): the server then
// never sends host calls (prompts) the bot could not answer.
func hostInfo() *psobj.Object {
	return bag(
		psobj.Prop{Name: "_isHostNull", Value: true},
		psobj.Prop{Name: "_isHostUINull", Value: true},
		psobj.Prop{Name: "_isHostRawUINull", Value: true},
		psobj.Prop{Name: "_useRunspaceHost", Value: true},
	)
}

// InitRunspacePoolData is the body of INIT_RUNSPACEPOOL ([MS-PSRP] 2.2.2.2).
func InitRunspacePoolData(minRunspaces, maxRunspaces int32) []byte {
	return encode(bag(
		psobj.Prop{Name: "MinRunspaces", Value: minRunspaces},
		psobj.Prop{Name: "MaxRunspaces", Value: maxRunspaces},
		psobj.Prop{Name: "PSThreadOptions", Value: enum("System.Management.Automation.Runspaces.PSThreadOptions", "Default", 0)},
		psobj.Prop{Name: "ApartmentState", Value: enum("System.Threading.ApartmentState", "Unknown", 2)},
		psobj.Prop{Name: "HostInfo", Value: hostInfo()},
		psobj.Prop{Name: "ApplicationArguments", Value: nil},
	))
}

// Param is one command parameter: a name (empty for a positional argument) and
// a value of the psobj model.
type Param struct {
	Name  string
	Value any
}

// CreatePipelineData is the body of CREATE_PIPELINE ([MS-PSRP] 2.2.2.10) for one
// command with parameters: IsScript false, so Cmd is a command name and the
// server never parses text as script (2.2.3.12); no input; every stream kept
// apart (no merging), so errors and warnings arrive as their own records.
func CreatePipelineData(cmd string, params []Param) []byte {
	resultType := func() *psobj.Object {
		return enum("System.Management.Automation.Runspaces.PipelineResultTypes", "None", 0)
	}
	args := make([]any, 0, len(params))
	for _, p := range params {
		var name any
		if p.Name != "" {
			name = p.Name
		}
		args = append(args, bag(psobj.Prop{Name: "N", Value: name}, psobj.Prop{Name: "V", Value: p.Value}))
	}
	command := bag(
		psobj.Prop{Name: "Cmd", Value: cmd},
		psobj.Prop{Name: "IsScript", Value: false},
		psobj.Prop{Name: "UseLocalScope", Value: nil},
		psobj.Prop{Name: "MergeMyResult", Value: resultType()},
		psobj.Prop{Name: "MergeToResult", Value: resultType()},
		psobj.Prop{Name: "MergePreviousResults", Value: resultType()},
		psobj.Prop{Name: "MergeError", Value: resultType()},
		psobj.Prop{Name: "MergeWarning", Value: resultType()},
		psobj.Prop{Name: "MergeVerbose", Value: resultType()},
		psobj.Prop{Name: "MergeDebug", Value: resultType()},
		psobj.Prop{Name: "MergeInformation", Value: resultType()},
		psobj.Prop{Name: "Args", Value: list(args)},
	)
	return encode(bag(
		psobj.Prop{Name: "NoInput", Value: true},
		psobj.Prop{Name: "ApartmentState", Value: enum("System.Threading.ApartmentState", "Unknown", 2)},
		psobj.Prop{Name: "RemoteStreamOptions", Value: enum("System.Management.Automation.RemoteStreamOptions", "None", 0)},
		psobj.Prop{Name: "AddToHistory", Value: false},
		psobj.Prop{Name: "HostInfo", Value: hostInfo()},
		psobj.Prop{Name: "PowerShell", Value: bag(
			psobj.Prop{Name: "IsNested", Value: false},
			psobj.Prop{Name: "ExtraCmds", Value: nil},
			psobj.Prop{Name: "Cmds", Value: list([]any{command})},
			psobj.Prop{Name: "History", Value: ""},
			psobj.Prop{Name: "RedirectShellErrorOutputPipe", Value: true},
		)},
		psobj.Prop{Name: "IsNested", Value: false},
	))
}

func list(items []any) *psobj.Object {
	return &psobj.Object{
		TypeNames: []string{"System.Collections.Generic.List`1[[System.Management.Automation.PSObject, System.Management.Automation, Version=3.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]", "System.Object"},
		List:      items,
	}
}

// StateData is the body of RUNSPACEPOOL_STATE ([MS-PSRP] 2.2.2.9) and
// PIPELINE_STATE (2.2.2.21): the state and, for Broken/Failed, the reason.
func StateData(pipeline bool, state int32, reason *psobj.Object) []byte {
	name := "RunspaceState"
	if pipeline {
		name = "PipelineState"
	}
	props := []psobj.Prop{{Name: name, Value: state}}
	if reason != nil {
		props = append(props, psobj.Prop{Name: "ExceptionAsErrorRecord", Value: reason})
	}
	return encode(bag(props...))
}

// ApplicationPrivateDataData is the body of APPLICATION_PRIVATE_DATA
// ([MS-PSRP] 2.2.2.13): an empty table, as a plain PowerShell endpoint sends.
func ApplicationPrivateDataData() []byte {
	return encode(bag(psobj.Prop{Name: "ApplicationPrivateData", Value: &psobj.Object{
		TypeNames: []string{"System.Management.Automation.PSPrimitiveDictionary", "System.Collections.Hashtable", "System.Object"},
		Dict:      []psobj.Entry{},
	}}))
}

// State reads the state number out of a RUNSPACEPOOL_STATE or PIPELINE_STATE
// body, with the error record of a Broken or Failed state.
func State(data []byte) (state int64, reason *psobj.Object, err error) {
	o, err := one(data)
	if err != nil {
		return 0, nil, err
	}
	for _, name := range []string{"PipelineState", "RunspaceState"} {
		if v, ok := o.Prop(name); ok {
			n, ok := v.(int64)
			if !ok {
				return 0, nil, fmt.Errorf("%s is %T, not a number", name, v)
			}
			r, _ := o.Prop("ExceptionAsErrorRecord")
			reason, _ = r.(*psobj.Object)
			return n, reason, nil
		}
	}
	return 0, nil, errors.New("state message without a state")
}

func one(data []byte) (*psobj.Object, error) {
	items, err := psobj.Decode(data)
	if err != nil {
		return nil, err
	}
	if len(items) != 1 {
		return nil, fmt.Errorf("message body holds %d values, want 1", len(items))
	}
	o, ok := items[0].(*psobj.Object)
	if !ok {
		return nil, fmt.Errorf("message body is %T, not an object", items[0])
	}
	return o, nil
}

// Failure is what an ERROR_RECORD ([MS-PSRP] 2.2.2.20, 2.2.3.15) says.
type Failure struct {
	Message  string
	Category string // ErrorCategory name, e.g. "ObjectNotFound"
	Target   string // the target object's string form
	ErrorID  string // FullyQualifiedErrorId
}

// errorCategories are System.Management.Automation.ErrorCategory's names by value.
var errorCategories = [...]string{"NotSpecified", "OpenError", "CloseError", "DeviceError",
	"DeadlockDetected", "InvalidArgument", "InvalidData", "InvalidOperation", "InvalidResult",
	"InvalidType", "MetadataError", "NotImplemented", "NotInstalled", "ObjectNotFound",
	"OperationStopped", "OperationTimeout", "SyntaxError", "ParserError", "PermissionDenied",
	"ResourceBusy", "ResourceExists", "ResourceUnavailable", "ReadError", "WriteError",
	"FromStdErr", "SecurityError", "ProtocolError", "ConnectionError", "AuthenticationError",
	"LimitsExceeded", "QuotaExceeded", "NotEnabled"}

// ErrorRecordData builds an error record as a server serializes one.
func ErrorRecordData(f Failure) []byte {
	return encode(ErrorRecordObject(f))
}

// ErrorRecordObject is the error record object of ErrorRecordData.
func ErrorRecordObject(f Failure) *psobj.Object {
	cat := int32(0)
	for i, c := range errorCategories {
		if c == f.Category {
			cat = int32(i)
		}
	}
	var target any
	if f.Target != "" {
		target = f.Target
	}
	return &psobj.Object{
		TypeNames:   []string{"System.Management.Automation.ErrorRecord", "System.Object"},
		ToString:    f.Message,
		HasToString: true,
		Props: []psobj.Prop{
			{Name: "Exception", Value: &psobj.Object{
				TypeNames:   []string{"System.Management.Automation.RemoteException", "System.Exception", "System.Object"},
				ToString:    f.Message,
				HasToString: true,
				Props:       []psobj.Prop{{Name: "Message", Value: f.Message}},
			}},
			{Name: "TargetObject", Value: target},
			{Name: "FullyQualifiedErrorId", Value: f.ErrorID},
			{Name: "InvocationInfo", Value: nil},
			{Name: "ErrorCategory_Category", Value: cat},
			{Name: "ErrorCategory_Activity", Value: ""},
			{Name: "ErrorCategory_Reason", Value: ""},
			{Name: "ErrorCategory_TargetName", Value: f.Target},
			{Name: "ErrorCategory_TargetType", Value: ""},
			{Name: "ErrorCategory_Message", Value: fmt.Sprintf("%s: (%s:) [], RemoteException", errorCategories[cat], f.Target)},
			{Name: "SerializeExtendedInfo", Value: false},
		},
	}
}

// ReadFailure reads an ERROR_RECORD body, or the ExceptionAsErrorRecord of a
// state message.
func ReadFailure(o *psobj.Object) Failure {
	var f Failure
	str := func(name string) string {
		v, _ := o.Prop(name)
		switch x := v.(type) {
		case string:
			return x
		case *psobj.Object:
			return x.String()
		case nil:
			return ""
		default:
			return fmt.Sprint(x)
		}
	}
	f.Message = str("ErrorDetails_Message")
	if f.Message == "" {
		if ex, ok := func() (*psobj.Object, bool) { v, _ := o.Prop("Exception"); x, ok := v.(*psobj.Object); return x, ok }(); ok {
			if m, ok := ex.Prop("Message"); ok {
				f.Message, _ = m.(string)
			}
			if f.Message == "" {
				f.Message = ex.String()
			}
		}
	}
	if f.Message == "" && o.HasToString {
		f.Message = o.ToString
	}
	if v, ok := o.Prop("ErrorCategory_Category"); ok {
		if n, ok := v.(int64); ok && n >= 0 && int(n) < len(errorCategories) {
			f.Category = errorCategories[n]
		}
	}
	f.Target = str("TargetObject")
	if f.Target == "" {
		f.Target = str("ErrorCategory_TargetName")
	}
	f.ErrorID = str("FullyQualifiedErrorId")
	return f
}

// DecodeErrorRecord reads an ERROR_RECORD body.
func DecodeErrorRecord(data []byte) (Failure, error) {
	o, err := one(data)
	if err != nil {
		return Failure{}, err
	}
	return ReadFailure(o), nil
}

// InformationalRecordData builds a WARNING_RECORD (or VERBOSE/DEBUG) body
// ([MS-PSRP] 2.2.3.16).
func InformationalRecordData(msg string) []byte {
	return encode(&psobj.Object{
		TypeNames:   []string{"System.Management.Automation.WarningRecord", "System.Management.Automation.InformationalRecord", "System.Object"},
		ToString:    msg,
		HasToString: true,
		Props: []psobj.Prop{
			{Name: "InformationalRecord_Message", Value: msg},
			{Name: "InformationalRecord_SerializeInvocationInfo", Value: false},
		},
	})
}

// DecodeInformationalRecord reads the message of a WARNING_RECORD body.
func DecodeInformationalRecord(data []byte) (string, error) {
	o, err := one(data)
	if err != nil {
		return "", err
	}
	if v, ok := o.Prop("InformationalRecord_Message"); ok {
		if s, ok := v.(string); ok {
			return s, nil
		}
	}
	return o.String(), nil
}

package psobj

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// The CLIXML codec follows [MS-PSRP] 2.2.5 "Serialization": 2.2.5.1 for the
// primitive types (one element per type, the value as its text) and 2.2.5.2 for
// complex objects (<Obj> with <TN>/<TNRef>, <ToString>, <Props>, <MS>, a
// collection or dictionary, and RefId/<Ref> for objects seen before). It is ours
// rather than a library's because a decoder that turns an element it does not
// know into nil, or lets <MS> replace <Props>, silently changes the facts a
// playbook decides on.

// Bounds of one Decode: CLIXML comes from the network, so neither its size, its
// nesting nor the fan-out of its references may grow without limit.
const (
	// MaxCLIXMLBytes is the largest document Decode accepts.
	MaxCLIXMLBytes = 64 << 20
	// MaxCLIXMLDepth bounds element nesting. PowerShell's serializer stops at
	// depth 1–2 for remote output; this leaves room for messages' own nesting.
	MaxCLIXMLDepth = 64
	// maxExpanded bounds the number of values reachable through <Ref>s, so a
	// small document cannot make a huge row set by referring to one object many
	// times at many levels.
	maxExpanded = 1 << 21
)

// SecureString is the ciphertext of a <SS> value: opaque to us (it is encrypted
// with the session key, [MS-PSRP] 2.2.5.1.24). Decode wraps it in an Object whose
// ToString names the type, so a row never shows the bytes.
type SecureString []byte

// Encode-only tags for primitives the model stores as plain strings: Decode
// returns a string for each, Encode writes the matching element.
type (
	// Version encodes as <Version> ("2.3").
	Version string
	// GUID encodes as <G>.
	GUID string
	// Char encodes as <C>: one UTF-16 code unit.
	Char uint16
)

const clixmlNS = "http://schemas.microsoft.com/powershell/2004/04"

// Decode reads one or several top-level values: an <Objs> document (Export-Clixml,
// a winrm shell's CLIXML) or the bare elements a PSRP message body carries
// (<Obj …>, <S>…). Every element of [MS-PSRP] 2.2.5 is understood; any other
// element is an error.
func Decode(data []byte) ([]any, error) {
	if len(data) > MaxCLIXMLBytes {
		return nil, fmt.Errorf("clixml: %d bytes exceeds the %d byte limit", len(data), MaxCLIXMLBytes)
	}
	// PSRP message bodies start with a UTF-8 byte order mark.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	d := &decoder{
		x:    xml.NewDecoder(bytes.NewReader(data)),
		objs: map[string]*Object{},
		tns:  map[string][]string{},
		open: map[*Object]bool{},
	}
	d.x.Strict = true
	var out []any
	for {
		tok, err := d.x.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("clixml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "Objs" {
				items, err := d.children(t, 1)
				if err != nil {
					return nil, err
				}
				out = append(out, items...)
				continue
			}
			v, _, err := d.value(t, 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("clixml: text %q outside any element", snippet(string(t)))
			}
		case xml.ProcInst, xml.Comment, xml.Directive:
			// <?xml …?> and "#< CLIXML" headers carry nothing we need.
		case xml.EndElement:
			return nil, fmt.Errorf("clixml: unexpected </%s>", t.Name.Local)
		}
	}
}

type decoder struct {
	x    *xml.Decoder
	objs map[string]*Object  // RefId → object, for <Ref>
	tns  map[string][]string // TN RefId → type names, for <TNRef>
	open map[*Object]bool    // objects being decoded: a <Ref> to one is a cycle
	size map[*Object]int     // values reachable from an object, for the <Ref> bound
	seen int                 // values decoded or reached through <Ref>s
}

// children decodes the value elements inside start up to its end.
func (d *decoder) children(start xml.StartElement, depth int) ([]any, error) {
	var out []any
	for {
		tok, err := d.x.Token()
		if err != nil {
			return nil, fmt.Errorf("clixml: inside <%s>: %w", start.Name.Local, eof(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			v, _, err := d.value(t, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		case xml.EndElement:
			return out, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("clixml: text %q inside <%s>", snippet(string(t)), start.Name.Local)
			}
		}
	}
}

// value decodes one value element and returns it with its N attribute (the
// property name or dictionary role), decoded.
func (d *decoder) value(start xml.StartElement, depth int) (any, string, error) {
	if depth > MaxCLIXMLDepth {
		return nil, "", fmt.Errorf("clixml: nesting deeper than %d", MaxCLIXMLDepth)
	}
	if d.seen++; d.seen > maxExpanded {
		return nil, "", fmt.Errorf("clixml: more than %d values", maxExpanded)
	}
	name := decodeString(attr(start, "N"))
	tag := start.Name.Local
	switch tag {
	case "Obj":
		o, err := d.object(start, depth)
		return o, name, err
	case "Ref":
		id := attr(start, "RefId")
		o, ok := d.objs[id]
		if !ok {
			return nil, "", fmt.Errorf("clixml: <Ref RefId=%q> to no earlier object", id)
		}
		if err := d.x.Skip(); err != nil {
			return nil, "", fmt.Errorf("clixml: <Ref>: %w", err)
		}
		if d.open[o] {
			// A reference to an enclosing object: keep its identity but not its
			// members, so walking the result always ends.
			return &Object{TypeNames: o.TypeNames, ToString: o.String(), HasToString: true}, name, nil
		}
		if d.seen += d.size[o]; d.seen > maxExpanded {
			return nil, "", fmt.Errorf("clixml: references expand to more than %d values", maxExpanded)
		}
		return o, name, nil
	case "Nil":
		if err := d.x.Skip(); err != nil {
			return nil, "", fmt.Errorf("clixml: <Nil>: %w", err)
		}
		return nil, name, nil
	}
	text, err := d.text(start)
	if err != nil {
		return nil, "", err
	}
	v, err := primitive(tag, text)
	if err != nil {
		return nil, "", fmt.Errorf("clixml: <%s N=%q>: %w", tag, name, err)
	}
	return v, name, nil
}

// text reads the character data of a primitive element; a child element is an
// error (primitives have none).
func (d *decoder) text(start xml.StartElement) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.x.Token()
		if err != nil {
			return "", fmt.Errorf("clixml: inside <%s>: %w", start.Name.Local, eof(err))
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			if !isPrimitive(start.Name.Local) {
				return "", fmt.Errorf("clixml: unknown element <%s>", start.Name.Local)
			}
			return "", fmt.Errorf("clixml: <%s> inside primitive <%s>", t.Name.Local, start.Name.Local)
		}
	}
}

func (d *decoder) object(start xml.StartElement, depth int) (*Object, error) {
	o := &Object{}
	if id := attr(start, "RefId"); id != "" {
		d.objs[id] = o
	}
	d.open[o] = true
	defer delete(d.open, o)
	before := d.seen
	hasValue := false
	for {
		tok, err := d.x.Token()
		if err != nil {
			return nil, fmt.Errorf("clixml: inside <Obj>: %w", eof(err))
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if d.size == nil {
				d.size = map[*Object]int{}
			}
			d.size[o] = d.seen - before
			return o, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("clixml: text %q inside <Obj>", snippet(string(t)))
			}
		case xml.StartElement:
			if err := d.member(o, t, depth, &hasValue); err != nil {
				return nil, err
			}
		}
	}
}

// member decodes one child of an <Obj>.
func (d *decoder) member(o *Object, t xml.StartElement, depth int, hasValue *bool) error {
	switch t.Name.Local {
	case "TN":
		names, err := d.typeNames(t)
		if err != nil {
			return err
		}
		o.TypeNames = names
		if id := attr(t, "RefId"); id != "" {
			d.tns[id] = names
		}
	case "TNRef":
		id := attr(t, "RefId")
		names, ok := d.tns[id]
		if !ok {
			return fmt.Errorf("clixml: <TNRef RefId=%q> to no earlier <TN>", id)
		}
		o.TypeNames = names
		return d.x.Skip()
	case "ToString":
		s, err := d.text(t)
		if err != nil {
			return err
		}
		o.ToString, o.HasToString = decodeString(s), true
	case "Props", "MS":
		// Adapted (<Props>) and extended (<MS>) members are both properties of
		// the object; neither replaces the other.
		return d.props(o, t, depth)
	case "LST", "IE", "STK", "QUE":
		items, err := d.children(t, depth+1)
		if err != nil {
			return err
		}
		if items == nil {
			items = []any{}
		}
		o.List = append(o.List, items...)
		if o.List == nil {
			o.List = []any{}
		}
	case "DCT":
		entries, err := d.dict(t, depth+1)
		if err != nil {
			return err
		}
		o.Dict = entries
		if o.Dict == nil {
			o.Dict = []Entry{}
		}
	default:
		if !isPrimitive(t.Name.Local) && t.Name.Local != "Ref" && t.Name.Local != "Nil" {
			return fmt.Errorf("clixml: unknown element <%s> in <Obj>", t.Name.Local)
		}
		if *hasValue {
			return fmt.Errorf("clixml: <Obj> wraps two values (second is <%s>)", t.Name.Local)
		}
		v, _, err := d.value(t, depth+1)
		if err != nil {
			return err
		}
		o.Value, *hasValue = v, true
	}
	return nil
}

func (d *decoder) typeNames(start xml.StartElement) ([]string, error) {
	names := []string{}
	for {
		tok, err := d.x.Token()
		if err != nil {
			return nil, fmt.Errorf("clixml: inside <TN>: %w", eof(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != "T" {
				return nil, fmt.Errorf("clixml: unknown element <%s> in <TN>", t.Name.Local)
			}
			s, err := d.text(t)
			if err != nil {
				return nil, err
			}
			names = append(names, decodeString(s))
		case xml.EndElement:
			return names, nil
		}
	}
}

func (d *decoder) props(o *Object, start xml.StartElement, depth int) error {
	for {
		tok, err := d.x.Token()
		if err != nil {
			return fmt.Errorf("clixml: inside <%s>: %w", start.Name.Local, eof(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			v, name, err := d.value(t, depth+2)
			if err != nil {
				return err
			}
			o.Props = append(o.Props, Prop{Name: name, Value: v})
		case xml.EndElement:
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("clixml: text %q inside <%s>", snippet(string(t)), start.Name.Local)
			}
		}
	}
}

// dict reads <DCT><En><… N="Key"/><… N="Value"/></En>…</DCT>.
func (d *decoder) dict(start xml.StartElement, depth int) ([]Entry, error) {
	var out []Entry
	for {
		tok, err := d.x.Token()
		if err != nil {
			return nil, fmt.Errorf("clixml: inside <DCT>: %w", eof(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local != "En" {
				return nil, fmt.Errorf("clixml: unknown element <%s> in <DCT>", t.Name.Local)
			}
			var e Entry
			var haveKey bool
			for {
				tok, err := d.x.Token()
				if err != nil {
					return nil, fmt.Errorf("clixml: inside <En>: %w", eof(err))
				}
				if end, ok := tok.(xml.EndElement); ok && end.Name.Local == "En" {
					break
				}
				st, ok := tok.(xml.StartElement)
				if !ok {
					continue
				}
				v, name, err := d.value(st, depth+2)
				if err != nil {
					return nil, err
				}
				switch name {
				case "Key":
					e.Key, haveKey = v, true
				case "Value":
					e.Value = v
				default:
					return nil, fmt.Errorf("clixml: dictionary entry member N=%q (want Key or Value)", name)
				}
			}
			if !haveKey {
				return nil, errors.New("clixml: dictionary entry without a Key")
			}
			out = append(out, e)
		case xml.EndElement:
			return out, nil
		}
	}
}

func isPrimitive(tag string) bool {
	switch tag {
	case "S", "C", "B", "DT", "TS", "By", "SB", "U16", "I16", "U32", "I32", "U64", "I64",
		"Sg", "Db", "D", "BA", "G", "URI", "Version", "XD", "SBK", "SS":
		return true
	}
	return false
}

// primitive maps a primitive element's text to its model value ([MS-PSRP] 2.2.5.1).
func primitive(tag, text string) (any, error) {
	trimmed := strings.TrimSpace(text)
	switch tag {
	case "S", "URI", "XD", "SBK":
		return decodeString(text), nil
	case "C":
		n, err := strconv.ParseUint(trimmed, 10, 16)
		if err != nil {
			return nil, err
		}
		return string(utf16.Decode([]uint16{uint16(n)})), nil
	case "B":
		switch trimmed {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean", trimmed)
	case "DT":
		return parseDateTime(trimmed)
	case "TS":
		d, ok := parseXSDuration(trimmed)
		if !ok {
			return nil, fmt.Errorf("%q is not an xs:duration", trimmed)
		}
		return Duration(d), nil
	case "By":
		return parseInt(trimmed, 0, math.MaxUint8)
	case "SB":
		return parseInt(trimmed, math.MinInt8, math.MaxInt8)
	case "U16":
		return parseInt(trimmed, 0, math.MaxUint16)
	case "I16":
		return parseInt(trimmed, math.MinInt16, math.MaxInt16)
	case "U32":
		return parseInt(trimmed, 0, math.MaxUint32)
	case "I32":
		return parseInt(trimmed, math.MinInt32, math.MaxInt32)
	case "I64":
		return parseInt(trimmed, math.MinInt64, math.MaxInt64)
	case "U64":
		return strconv.ParseUint(trimmed, 10, 64)
	case "Sg", "Db", "D":
		// Decimal (D) loses digits beyond float64's precision; the rows that
		// use it (sizes, rates) never carry that many.
		switch trimmed {
		case "INF":
			return math.Inf(1), nil
		case "-INF":
			return math.Inf(-1), nil
		case "NaN":
			return math.NaN(), nil
		}
		return strconv.ParseFloat(trimmed, 64)
	case "BA":
		return base64.StdEncoding.DecodeString(trimmed)
	case "G", "Version":
		return trimmed, nil
	case "SS":
		b, err := base64.StdEncoding.DecodeString(trimmed)
		if err != nil {
			return nil, err
		}
		return &Object{
			TypeNames:   []string{"System.Security.SecureString", "System.Object"},
			ToString:    "System.Security.SecureString",
			HasToString: true,
			Value:       SecureString(b),
		}, nil
	}
	return nil, fmt.Errorf("unknown element <%s>", tag)
}

func parseInt(s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

// dateLayouts are the xs:dateTime forms .NET writes: with an offset (Local), with
// Z (Utc), or with neither (Unspecified, read as UTC).
var dateLayouts = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"}

func parseDateTime(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an xs:dateTime", s)
}

// decodeString undoes the _xHHHH_ escapes of [MS-PSRP] 2.2.5.1.1 (control
// characters, surrogates, "_x" itself), pairing surrogates into one rune.
func decodeString(s string) string {
	if !strings.Contains(s, "_x") {
		return s
	}
	var units []uint16
	var b strings.Builder
	flush := func() {
		if len(units) > 0 {
			b.WriteString(string(utf16.Decode(units)))
			units = units[:0]
		}
	}
	for i := 0; i < len(s); {
		if u, ok := escapeAt(s, i); ok {
			units = append(units, u)
			i += 7
			continue
		}
		flush()
		b.WriteByte(s[i])
		i++
	}
	flush()
	return b.String()
}

func escapeAt(s string, i int) (uint16, bool) {
	if i+7 > len(s) || s[i] != '_' || s[i+1] != 'x' || s[i+6] != '_' {
		return 0, false
	}
	n, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

// encodeString escapes what XML 1.0 cannot carry (control characters other than
// tab, LF and CR need _xHHHH_; CR too, or XML parsers turn it into LF), a literal
// "_x" that would otherwise read as an escape, and lone surrogates; XML's own
// specials are left to the XML escaper.
func encodeString(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_' && strings.HasPrefix(s[i:], "_x"):
			b.WriteString("_x005F_")
		case r < 0x20 && r != '\t' && r != '\n', r == 0xFFFE, r == 0xFFFF:
			fmt.Fprintf(&b, "_x%04X_", r)
		case r == 0xFFFD && !strings.HasPrefix(s[i:], "\uFFFD"):
			// invalid UTF-8 byte: keep it visible rather than dropping it
			b.WriteString("_xFFFD_")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func snippet(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Encode writes v as one bare CLIXML element, the form a PSRP message body
// carries ([MS-PSRP] 2.2.2). Model values map back to their elements: string <S>,
// bool <B>, int64 <I64>, uint64 <U64>, float64 <Db>, time.Time <DT>, Duration and
// time.Duration <TS>, []byte <BA>, nil <Nil>, []any an ArrayList <Obj> with <LST>,
// *Object <Obj>. Other Go integer types pick the element of their width (int32
// <I32>, uint8 <By>, …), and Version, GUID and Char tag the string primitives.
//
// An Object's Props are written as <MS> when it has no type names (a property
// bag, as PSRP messages use) and as <Props> otherwise (a deserialized object's
// adapted properties).
func Encode(v any) ([]byte, error) {
	e := &encoder{tns: map[string]int{}}
	if err := e.value(v, "", 0); err != nil {
		return nil, err
	}
	return e.b.Bytes(), nil
}

// EncodeDocument writes items as an <Objs> document, the form Export-Clixml and a
// winrm shell print.
func EncodeDocument(items []any) ([]byte, error) {
	e := &encoder{tns: map[string]int{}}
	e.b.WriteString(`<Objs Version="1.1.0.1" xmlns="` + clixmlNS + `">`)
	for _, it := range items {
		if err := e.value(it, "", 1); err != nil {
			return nil, err
		}
	}
	e.b.WriteString("</Objs>")
	return e.b.Bytes(), nil
}

type encoder struct {
	b     bytes.Buffer
	refID int
	tns   map[string]int // joined type names → TN RefId
	tnID  int
}

func (e *encoder) value(v any, name string, depth int) error {
	if depth > MaxCLIXMLDepth {
		return fmt.Errorf("clixml: nesting deeper than %d (a cycle?)", MaxCLIXMLDepth)
	}
	if e.b.Len() > MaxCLIXMLBytes {
		return fmt.Errorf("clixml: encoding exceeds %d bytes", MaxCLIXMLBytes)
	}
	switch x := v.(type) {
	case nil:
		e.open("Nil", name)
		e.b.Truncate(e.b.Len() - 1)
		e.b.WriteString(" />")
		return nil
	case string:
		e.prim("S", name, encodeString(x))
	case Version:
		e.prim("Version", name, string(x))
	case GUID:
		e.prim("G", name, string(x))
	case Char:
		e.prim("C", name, strconv.FormatUint(uint64(x), 10))
	case bool:
		e.prim("B", name, strconv.FormatBool(x))
	case int64:
		e.prim("I64", name, strconv.FormatInt(x, 10))
	case int:
		e.prim("I64", name, strconv.Itoa(x))
	case int32:
		e.prim("I32", name, strconv.FormatInt(int64(x), 10))
	case int16:
		e.prim("I16", name, strconv.FormatInt(int64(x), 10))
	case int8:
		e.prim("SB", name, strconv.FormatInt(int64(x), 10))
	case uint64:
		e.prim("U64", name, strconv.FormatUint(x, 10))
	case uint32:
		e.prim("U32", name, strconv.FormatUint(uint64(x), 10))
	case uint16:
		e.prim("U16", name, strconv.FormatUint(uint64(x), 10))
	case uint8:
		e.prim("By", name, strconv.FormatUint(uint64(x), 10))
	case float64:
		e.prim("Db", name, formatFloat(x, 64))
	case float32:
		e.prim("Sg", name, formatFloat(float64(x), 32))
	case time.Time:
		e.prim("DT", name, x.Format("2006-01-02T15:04:05.9999999Z07:00"))
	case Duration:
		e.prim("TS", name, formatXSDuration(time.Duration(x)))
	case time.Duration:
		e.prim("TS", name, formatXSDuration(x))
	case []byte:
		e.prim("BA", name, base64.StdEncoding.EncodeToString(x))
	case SecureString:
		e.prim("SS", name, base64.StdEncoding.EncodeToString(x))
	case []any:
		return e.object(&Object{
			TypeNames: []string{"System.Collections.ArrayList", "System.Object"},
			List:      x,
		}, name, depth)
	case *Object:
		if x == nil {
			return e.value(nil, name, depth)
		}
		if ss, ok := x.Value.(SecureString); ok && len(x.Props) == 0 {
			return e.value(ss, name, depth)
		}
		return e.object(x, name, depth)
	default:
		return fmt.Errorf("clixml: cannot encode %s", reflect.TypeOf(v))
	}
	return nil
}

func (e *encoder) open(tag, name string) {
	e.b.WriteString("<" + tag)
	if name != "" {
		e.b.WriteString(` N="`)
		xmlEscape(&e.b, encodeString(name))
		e.b.WriteString(`"`)
	}
	e.b.WriteString(">")
}

func (e *encoder) prim(tag, name, text string) {
	e.open(tag, name)
	xmlEscape(&e.b, text)
	e.b.WriteString("</" + tag + ">")
}

func (e *encoder) object(o *Object, name string, depth int) error {
	e.b.WriteString("<Obj")
	if name != "" {
		e.b.WriteString(` N="`)
		xmlEscape(&e.b, encodeString(name))
		e.b.WriteString(`"`)
	}
	fmt.Fprintf(&e.b, ` RefId="%d">`, e.refID)
	e.refID++
	if len(o.TypeNames) > 0 {
		key := strings.Join(o.TypeNames, "\x00")
		if id, ok := e.tns[key]; ok {
			fmt.Fprintf(&e.b, `<TNRef RefId="%d" />`, id)
		} else {
			e.tns[key] = e.tnID
			fmt.Fprintf(&e.b, `<TN RefId="%d">`, e.tnID)
			e.tnID++
			for _, t := range o.TypeNames {
				e.prim("T", "", encodeString(t))
			}
			e.b.WriteString("</TN>")
		}
	}
	if o.HasToString {
		e.prim("ToString", "", encodeString(o.ToString))
	}
	if o.Value != nil {
		if err := e.value(o.Value, "", depth+1); err != nil {
			return err
		}
	}
	if o.List != nil {
		e.b.WriteString("<LST>")
		for _, it := range o.List {
			if err := e.value(it, "", depth+2); err != nil {
				return err
			}
		}
		e.b.WriteString("</LST>")
	}
	if o.Dict != nil {
		e.b.WriteString("<DCT>")
		for _, en := range o.Dict {
			e.b.WriteString("<En>")
			if err := e.value(en.Key, "Key", depth+3); err != nil {
				return err
			}
			if err := e.value(en.Value, "Value", depth+3); err != nil {
				return err
			}
			e.b.WriteString("</En>")
		}
		e.b.WriteString("</DCT>")
	}
	if len(o.Props) > 0 {
		tag := "Props"
		if len(o.TypeNames) == 0 {
			tag = "MS"
		}
		e.b.WriteString("<" + tag + ">")
		for _, p := range o.Props {
			if err := e.value(p.Value, p.Name, depth+2); err != nil {
				return err
			}
		}
		e.b.WriteString("</" + tag + ">")
	}
	e.b.WriteString("</Obj>")
	return nil
}

func xmlEscape(b *bytes.Buffer, s string) {
	// EscapeText writes CR, LF and tab as character references, which keeps them
	// through any XML parser's newline normalisation.
	_ = xml.EscapeText(b, []byte(s))
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'G', -1, bits)
}

// formatXSDuration writes d as .NET's XmlConvert writes a TimeSpan: "PT1H2M3.5S",
// "P2DT3H", "-PT5S".
func formatXSDuration(d time.Duration) string {
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	b.WriteByte('P')
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		fmt.Fprintf(&b, "%dD", days)
	}
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	s := d % time.Minute
	if h == 0 && m == 0 && s == 0 && days > 0 {
		return b.String()
	}
	b.WriteByte('T')
	if h > 0 {
		fmt.Fprintf(&b, "%dH", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dM", m)
	}
	if s > 0 || (h == 0 && m == 0) {
		b.WriteString(strconv.FormatFloat(s.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}

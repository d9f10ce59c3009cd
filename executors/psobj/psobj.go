// Package psobj is the one place where PowerShell objects become playbook rows.
//
// Every PowerShell-capable executor ends up holding the same thing: objects as
// PowerShell's serializer describes them (type names, a ToString, properties,
// primitive values) — deserialized from PSRP output (exchange, jea), from the
// CLIXML a plain WinRM shell prints (winrm), or built from an organisation file
// (lab). Row turns one of them into a flat map of JSON-friendly values, mapping
// Exchange's types once:
//
//   - ByteQuantifiedSize → bytes (int64), from "1.5 MB (1,572,864 bytes)"
//   - EnhancedTimeSpan and TimeSpan → seconds (float64)
//   - DateTime → UTC RFC 3339
//   - enums → their name (string)
//   - Unlimited → nil, plus "<Property>IsUnlimited": true
//   - identities and other objects with a ToString → that string
//   - multi-valued properties → lists of the above
//
// Shapes follow [MS-PSRP] 2.2.5 (serialization of objects) and what Exchange's
// types print as ToString (ByteQuantifiedSize, EnhancedTimeSpan, Unlimited<T>,
// documented under "Microsoft.Exchange.Data" and visible in any Exchange
// Management Shell session).
package psobj

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// Object is one PowerShell complex object (a CLIXML <Obj>).
type Object struct {
	// TypeNames, most derived first ("Deserialized.Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo", …).
	TypeNames []string
	// ToString is the object's string form; HasToString tells an empty one from none.
	ToString    string
	HasToString bool
	// Value is the primitive an object wraps: an enum's number, a boxed int.
	Value any
	// Props are the adapted and extended properties (<Props>, <MS>) in document order.
	Props []Prop
	// List holds the items of a collection (<LST>, <IE>, <STK>, <QUE>).
	List []any
	// Dict holds the entries of a dictionary (<DCT>), in document order.
	Dict []Entry
}

// Prop is one named property.
type Prop struct {
	Name  string
	Value any
}

// Entry is one dictionary entry.
type Entry struct {
	Key   any
	Value any
}

// Duration is a PowerShell TimeSpan (<TS>): kept apart from an integer so Row
// can turn it into seconds.
type Duration time.Duration

// Values a property may hold besides *Object and Duration: nil, string, bool,
// int64, uint64, float64, time.Time, []byte and []any (a bare list). Codecs
// map every CLIXML primitive onto one of them.

// Prop returns the named property (case-insensitive, as PowerShell) and whether
// the object has it.
func (o *Object) Prop(name string) (any, bool) {
	for _, p := range o.Props {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return nil, false
}

// Is reports whether one of the object's type names ends with suffix, ignoring a
// "Deserialized." prefix and generic arguments (Is("Unlimited") matches
// "Deserialized.Microsoft.Exchange.Data.Unlimited`1[[System.Int32, …]]").
func (o *Object) Is(suffix string) bool {
	for _, tn := range o.TypeNames {
		tn = strings.TrimPrefix(tn, "Deserialized.")
		if i := strings.IndexByte(tn, '`'); i >= 0 {
			tn = tn[:i]
		}
		if tn == suffix || strings.HasSuffix(tn, "."+suffix) {
			return true
		}
	}
	return false
}

// String is the object's ToString, or its type name when it has none.
func (o *Object) String() string {
	if o.HasToString {
		return o.ToString
	}
	if len(o.TypeNames) > 0 {
		return o.TypeNames[0]
	}
	return ""
}

// UnlimitedSuffix is appended to a property's name for the flag that says its
// value was Unlimited (the value itself becomes nil).
const UnlimitedSuffix = "IsUnlimited"

// Row flattens one output object into a row. With sel, the row has exactly those
// properties in that order (a missing one is nil); without, every property. An
// output item that is not an object (a bare string or number) becomes
// {"Value": …}.
func Row(v any, sel []string) map[string]any {
	o, ok := v.(*Object)
	if !ok || (len(o.Props) == 0 && (o.HasToString || o.Value != nil || o.List != nil)) {
		val, unlimited := Scalar(v)
		row := map[string]any{"Value": val}
		if unlimited {
			row["Value"+UnlimitedSuffix] = true
		}
		return row
	}
	row := make(map[string]any, max(len(sel), len(o.Props)))
	put := func(name string, raw any) {
		val, unlimited := Scalar(raw)
		row[name] = val
		if unlimited {
			row[name+UnlimitedSuffix] = true
		}
	}
	if len(sel) == 0 {
		for _, p := range o.Props {
			put(p.Name, p.Value)
		}
		return row
	}
	for _, name := range sel {
		raw, _ := o.Prop(name)
		put(name, raw)
	}
	return row
}

// Scalar maps one property value to its row form; unlimited reports an
// Unlimited value (returned as nil).
func Scalar(v any) (out any, unlimited bool) {
	switch x := v.(type) {
	case nil, string, bool, int64, float64:
		return x, false
	case int:
		return int64(x), false
	case int32:
		return int64(x), false
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), false
		}
		return float64(x), false
	case time.Time:
		return x.UTC().Format(time.RFC3339), false
	case Duration:
		return time.Duration(x).Seconds(), false
	case []byte:
		return x, false
	case []any:
		return list(x), false
	case *Object:
		return object(x)
	default:
		return fmt.Sprint(x), false
	}
}

func list(items []any) []any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		v, _ := Scalar(it)
		out = append(out, v)
	}
	return out
}

func object(o *Object) (any, bool) {
	text := o.String()
	switch {
	case o.Is("Unlimited") && strings.EqualFold(strings.TrimSpace(text), "Unlimited"):
		return nil, true
	case o.Is("ByteQuantifiedSize") || (o.Is("Unlimited") && bytesRE().MatchString(text)):
		if n, ok := ParseBytes(text); ok {
			return n, false
		}
		return text, false
	case o.Is("EnhancedTimeSpan") || o.Is("TimeSpan"):
		if d, ok := ParseTimeSpan(text); ok {
			return d.Seconds(), false
		}
		return text, false
	case o.Is("Unlimited"):
		// Unlimited<int> and friends: the number, when it is one.
		if n, err := strconv.ParseInt(strings.ReplaceAll(text, ",", ""), 10, 64); err == nil {
			return n, false
		}
		return text, false
	case o.Is("Enum"):
		return text, false
	case o.List != nil:
		return list(o.List), false
	case o.Dict != nil:
		m := make(map[string]any, len(o.Dict))
		for _, e := range o.Dict {
			v, _ := Scalar(e.Value)
			m[fmt.Sprint(e.Key)] = v
		}
		return m, false
	case o.HasToString:
		return o.ToString, false
	case o.Value != nil:
		return Scalar(o.Value)
	default:
		m := make(map[string]any, len(o.Props))
		for _, p := range o.Props {
			v, _ := Scalar(p.Value)
			m[p.Name] = v
		}
		return m, false
	}
}

// bytesRE finds the exact byte count Exchange prints in parentheses:
// "1.5 MB (1,572,864 bytes)", "0 B (0 bytes)".
var bytesRE = lazyre.New(`\(([\d,.\s\x{00a0}\x{202f}']+) bytes\)`)

// ParseBytes reads a ByteQuantifiedSize's ToString. The parenthesised count is
// exact; the leading "1.5 MB" is rounded, so it is used only when the count is
// missing.
func ParseBytes(s string) (int64, bool) {
	if m := bytesRE().FindStringSubmatch(s); m != nil {
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, m[1])
		n, err := strconv.ParseInt(digits, 10, 64)
		return n, err == nil
	}
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return 0, false
	}
	f, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, false
	}
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := slices.Index(units, strings.ToUpper(fields[1]))
	if i < 0 {
		return 0, false
	}
	return int64(f * math.Pow(1024, float64(i))), true
}

// ParseTimeSpan reads .NET's TimeSpan.ToString() ("[-][d.]hh:mm:ss[.fffffff]"),
// which EnhancedTimeSpan shares, and the xs:duration form CLIXML uses in <TS>
// ("PT1H2M3.5S", "P1DT2H").
func ParseTimeSpan(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if strings.HasPrefix(s, "P") || strings.HasPrefix(s, "-P") {
		return parseXSDuration(s)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var days int64
	if dot, colon := strings.IndexByte(s, '.'), strings.IndexByte(s, ':'); dot >= 0 && (colon < 0 || dot < colon) {
		d, err := strconv.ParseInt(s[:dot], 10, 64)
		if err != nil {
			return 0, false
		}
		days, s = d, s[dot+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		if len(parts) == 1 && days == 0 { // a bare number of days: "3"
			d, err := strconv.ParseInt(parts[0], 10, 64)
			if err != nil {
				return 0, false
			}
			return signed(time.Duration(d)*24*time.Hour, neg), true
		}
		return 0, false
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 64)
	m, err2 := strconv.ParseInt(parts[1], 10, 64)
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, false
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec*float64(time.Second))
	return signed(d, neg), true
}

func signed(d time.Duration, neg bool) time.Duration {
	if neg {
		return -d
	}
	return d
}

var xsDurationRE = lazyre.New(`^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

func parseXSDuration(s string) (time.Duration, bool) {
	m := xsDurationRE().FindStringSubmatch(s)
	if m == nil || s == "P" || s == "PT" {
		return 0, false
	}
	num := func(x string) float64 {
		if x == "" {
			return 0
		}
		f, _ := strconv.ParseFloat(x, 64)
		return f
	}
	d := time.Duration((num(m[2])*86400 + num(m[3])*3600 + num(m[4])*60 + num(m[5])) * float64(time.Second))
	return signed(d, m[1] == "-"), true
}

// JSON renders output objects as the JSON array of rows an executors.Output
// carries in Stdout.
func JSON(items []any, sel []string) ([]byte, error) {
	rows := make([]map[string]any, 0, len(items))
	for _, it := range items {
		rows = append(rows, Row(it, sel))
	}
	return json.Marshal(rows)
}

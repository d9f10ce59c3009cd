package exo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// page is one answer of either route: OData's value array and the link to the
// next page, or a bare object (an endpoint that returns a single one).
type page struct {
	Items    []map[string]any
	NextLink string
}

// decodePage reads one page. Numbers stay json.Number until a row is built, so
// 64-bit counts keep their precision.
func decodePage(body []byte) (page, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return page{}, fmt.Errorf("answer is not JSON: %w", err)
	}
	var p page
	switch x := top.(type) {
	case nil:
	case []any:
		p.Items = objects(x)
	case map[string]any:
		if link, ok := x["@odata.nextLink"].(string); ok {
			p.NextLink = link
		}
		if v, ok := x["value"]; ok {
			list, isList := v.([]any)
			if !isList {
				return page{}, fmt.Errorf("answer's value is %T, not a list", v)
			}
			p.Items = objects(list)
			break
		}
		p.Items = []map[string]any{x}
	default:
		return page{}, fmt.Errorf("answer is a JSON %T, not an object", top)
	}
	return p, nil
}

func objects(list []any) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		} else {
			out = append(out, map[string]any{"Value": it})
		}
	}
	return out
}

// row turns one Exchange Online object into the row a PowerShell remoting target
// writes for the same object (executors/psobj), so a rule reads the same Go
// shapes on an exchange and an exo target:
//
//   - annotations ("@odata.context", "X@odata.type", "X@data.type") are dropped;
//     a "X@data.type" of System.DateTime or System.TimeSpan types X;
//   - DateTime (typed, or ISO 8601 text with a zone) → UTC RFC 3339, as psobj;
//   - TimeSpan and EnhancedTimeSpan text ("1.00:00:00", "00:05:00") → seconds;
//   - ByteQuantifiedSize text ("99 GB (106,300,440,576 bytes)") → bytes;
//   - "Unlimited" → nil, plus "<Property>IsUnlimited": true;
//   - integers → int64, other numbers → float64; lists element by element.
//
// With sel the row has exactly those properties in that order (matched without
// regard to case, a missing one nil), as psobj.Row; RouteField is added always.
func row(obj map[string]any, sel []string, route Route) map[string]any {
	types := map[string]string{}
	for k, v := range obj {
		if name, ok := strings.CutSuffix(k, "@data.type"); ok {
			if s, isStr := v.(string); isStr {
				types[strings.ToLower(name)] = s
			}
		}
	}
	out := make(map[string]any, len(obj)+1)
	put := func(name string, raw any) {
		v, unlimited := value(raw, types[strings.ToLower(name)])
		out[name] = v
		if unlimited {
			out[name+executors.UnlimitedSuffix] = true
		}
	}
	if len(sel) == 0 {
		for k, v := range obj {
			if !strings.Contains(k, "@") {
				put(k, v)
			}
		}
	} else {
		for _, name := range sel {
			var raw any
			for k, v := range obj {
				if strings.EqualFold(k, name) && !strings.Contains(k, "@") {
					raw = v
					break
				}
			}
			put(name, raw)
		}
	}
	out[RouteField] = string(route)
	return out
}

var (
	// isoTimeRE: a DateTime as .NET's JSON writes it, with a zone (Z or ±hh:mm)
	// and up to seven fractional digits.
	isoTimeRE = lazyre.New(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?(?:Z|[+-]\d{2}:\d{2})$`)
	// timeSpanRE: .NET's TimeSpan.ToString() ("[-][d.]hh:mm:ss[.fffffff]").
	timeSpanRE = lazyre.New(`^-?(?:\d+\.)?\d{1,2}:\d{2}:\d{2}(?:\.\d{1,7})?$`)
	// sizeRE: a ByteQuantifiedSize's ToString, with the exact count in brackets.
	sizeRE = lazyre.New(`^\d[\d.,]* (?:B|KB|MB|GB|TB) \([\d,]+ bytes\)$`)
)

func value(v any, typ string) (out any, unlimited bool) {
	switch x := v.(type) {
	case nil, bool:
		return x, false
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, false
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return x.String(), false
		}
		return f, false
	case string:
		return text(x, typ)
	case []any:
		list := make([]any, 0, len(x))
		for _, it := range x {
			v, _ := value(it, "")
			list = append(list, v)
		}
		return list, false
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, it := range x {
			if !strings.Contains(k, "@") {
				m[k], _ = value(it, "")
			}
		}
		return m, false
	default:
		return fmt.Sprint(x), false
	}
}

func text(s, typ string) (any, bool) {
	switch {
	case strings.EqualFold(s, "Unlimited"):
		return nil, true
	case typ == "System.DateTime" || isoTimeRE().MatchString(s):
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC().Format(time.RFC3339), false
		}
	case typ == "System.TimeSpan" || timeSpanRE().MatchString(s):
		if d, ok := psobj.ParseTimeSpan(s); ok {
			return d.Seconds(), false
		}
	case sizeRE().MatchString(s):
		if n, ok := psobj.ParseBytes(s); ok {
			return n, false
		}
	case typ == "System.Int32" || typ == "System.Int64":
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, false
		}
	}
	return s, false
}

package executors

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ndrbot/ndrbot/incident"
)

// IntParam reads an optional integer parameter of an Action in [lo, hi]. Params
// arrive as decoded JSON (float64), as Go values from the engine (int, int64) or as
// text; anything else, a fraction or a value out of range is invalid input.
func IntParam(params map[string]any, key string, def, lo, hi int) (int, error) {
	v, ok := params[key]
	if !ok || v == nil {
		return def, nil
	}
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1e9 {
			return 0, fmt.Errorf("parameter %q: %v is not an integer: %w", key, x, incident.ErrInvalidInput)
		}
		n = int(x)
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("parameter %q: %q is not an integer: %w", key, x, incident.ErrInvalidInput)
		}
		n = i
	default:
		return 0, fmt.Errorf("parameter %q is %T, want an integer: %w", key, v, incident.ErrInvalidInput)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("parameter %q: %d is outside %d..%d: %w", key, n, lo, hi, incident.ErrInvalidInput)
	}
	return n, nil
}

// BoolParam reads an optional boolean parameter (a bool or "true"/"false").
func BoolParam(params map[string]any, key string, def bool) (bool, error) {
	v, ok := params[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("parameter %q: %q is not a boolean: %w", key, x, incident.ErrInvalidInput)
		}
		return b, nil
	default:
		return false, fmt.Errorf("parameter %q is %T, want a boolean: %w", key, v, incident.ErrInvalidInput)
	}
}

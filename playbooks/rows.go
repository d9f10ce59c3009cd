package playbooks

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Rows normalises a host's JSON output into a list of objects, each carrying the
// host under "Host". PowerShell's ConvertTo-Json writes a single object for one
// item and an array for several, may prefix a UTF-8 BOM, and writes nothing at all
// for an empty pipeline; all of these become rows.
func Rows(host string, stdout []byte) ([]map[string]any, error) {
	data := bytes.TrimSpace(bytes.TrimPrefix(stdout, []byte("\xef\xbb\xbf")))
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return []map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("output is not JSON (%s): %q", err, truncate(string(data), 120))
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	default:
		items = []any{x}
	}
	rows := make([]map[string]any, 0, len(items))
	for _, it := range items {
		row, ok := it.(map[string]any)
		if !ok {
			row = map[string]any{"Value": it}
		}
		if _, has := row["Host"]; !has {
			row["Host"] = host
		}
		rows = append(rows, row)
	}
	return rows, nil
}

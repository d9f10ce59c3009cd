package playbooks

import (
	"bytes"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// topKeyRE is a top-level key as the built-ins write them: a plain name at
// column 0, a colon, then a space or the end of the line.
var topKeyRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*):(?:[ \t]|\r?\n|$)`)

// headOf reads a playbook's id and matches without parsing the rest of the
// file: choosing a playbook needs only those, and parsing every built-in's YAML
// was a good part of a diagnosis's start-up. Each of the two top-level values is
// cut out (its line and the indented, blank, comment or "- " lines after it, up
// to the next top-level key) and parsed on its own, with the rules parse applies.
//
// It reads only what it is sure of: ok is false, and the caller parses the file
// whole, on a document marker, a tab at the start of a line, a top-level line
// that is not a plain key (a flow mapping, a quoted or complex key, a merge),
// either key missing or given twice, or a value that is not what parse accepts.
// TestHeadOfIsParse holds it to parse for every built-in.
func headOf(data []byte) (id string, matches []string, ok bool) {
	var idText, matchesText []byte
	var value *[]byte // the value being collected, nil for any other key
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("---")), bytes.HasPrefix(line, []byte("...")), line[0] == '\t':
			return "", nil, false
		case len(bytes.TrimSpace(line)) == 0, line[0] == ' ', line[0] == '#', isItem(line):
			// Inside the current value (a block sequence may start at column 0).
		default:
			m := topKeyRE.FindSubmatch(line)
			if m == nil {
				return "", nil, false
			}
			value = nil
			switch string(m[1]) {
			case "id":
				value = &idText
			case "matches":
				value = &matchesText
			}
			if value != nil && *value != nil {
				return "", nil, false // duplicate key: parse reports it
			}
		}
		if value != nil {
			*value = append(*value, line...)
		}
	}
	if idText == nil || matchesText == nil {
		return "", nil, false
	}
	pr := &problems{}
	idNode, matchesNode := topValue(idText), topValue(matchesText)
	if idNode == nil || matchesNode == nil {
		return "", nil, false
	}
	id, matches = str(pr, idNode), strs(pr, matchesNode)
	if len(pr.list) > 0 || id == "" {
		return "", nil, false
	}
	return id, matches, true
}

// topValue parses "key: value…" and returns the value's node, nil when it is
// not one mapping of one key.
func topValue(text []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil || len(doc.Content) != 1 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode || len(m.Content) != 2 {
		return nil
	}
	return m.Content[1]
}

// isItem reports whether a line is a block sequence item ("- x" or "-").
func isItem(line []byte) bool {
	rest := bytes.TrimRight(line, "\r\n")
	return len(rest) > 0 && rest[0] == '-' && (len(rest) == 1 || rest[1] == ' ')
}

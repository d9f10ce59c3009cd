package playbooks

import (
	"bytes"

	"go.yaml.in/yaml/v3"

	"github.com/ndrbot/ndrbot/internal/lazyre"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// Head is what choosing a playbook needs of it — for a code, or for a bounce
// whose values fill its parameters: its id, matches and parameters. Index knows
// a built-in's without parsing the rest of it (headOf).
type Head struct {
	ID         string
	Matches    []string
	Params     params.Set
	ParamOrder []string // the file's order
}

// Head is the playbook's head.
func (pb *Playbook) Head() Head {
	return Head{ID: pb.ID, Matches: pb.Matches, Params: pb.Params, ParamOrder: pb.ParamOrder}
}

// topKeyRE is a top-level key as the built-ins write them: a plain name at
// column 0, a colon, then a space or the end of the line.
var topKeyRE = lazyre.New(`^([A-Za-z_][A-Za-z0-9_-]*):(?:[ \t]|\r?\n|$)`)

// headOf reads a playbook's id, matches and params without parsing the rest of
// the file: choosing a playbook needs only those, and parsing every built-in's
// YAML was a good part of a diagnosis's start-up. Each of the three top-level
// values is cut out (its line and the indented, blank, comment or "- " lines
// after it, up to the next top-level key) and parsed on its own, with the rules
// parse applies.
//
// It reads only what it is sure of: ok is false, and the caller parses the file
// whole, on a document marker, a tab at the start of a line, a top-level line
// that is not a plain key (a flow mapping, a quoted or complex key, a merge),
// id or matches missing, a key given twice, or a value that is not what parse
// accepts. TestHeadOfIsParse holds it to parse for every built-in.
func headOf(data []byte) (Head, bool) {
	h, params, ok := scanHead(data)
	if !ok {
		return Head{}, false
	}
	return h.withParams(params)
}

// scanHead is headOf but for the params, whose text it returns for withParams:
// a diagnosis chooses its playbook by id and matches, and only an NDR file's
// values are matched to parameters.
func scanHead(data []byte) (h Head, paramsText []byte, ok bool) {
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
			return Head{}, nil, false
		case len(bytes.TrimSpace(line)) == 0, line[0] == ' ', line[0] == '#', isItem(line):
			// Inside the current value (a block sequence may start at column 0).
		default:
			m := topKeyRE().FindSubmatch(line)
			if m == nil {
				return Head{}, nil, false
			}
			value = nil
			switch string(m[1]) {
			case "id":
				value = &idText
			case "matches":
				value = &matchesText
			case "params":
				value = &paramsText
			}
			if value != nil && *value != nil {
				return Head{}, nil, false // duplicate key: parse reports it
			}
		}
		if value != nil {
			*value = append(*value, line...)
		}
	}
	if idText == nil || matchesText == nil {
		return Head{}, nil, false
	}
	pr := &problems{}
	idNode, matchesNode := topValue(idText), topValue(matchesText)
	if idNode == nil || matchesNode == nil {
		return Head{}, nil, false
	}
	h = Head{ID: str(pr, idNode), Matches: strs(pr, matchesNode)}
	if len(pr.list) > 0 || h.ID == "" {
		return Head{}, nil, false
	}
	return h, paramsText, true
}

// withParams is h with the params parsed from their text (scanHead); false
// when they do not parse as parse would take them.
func (h Head) withParams(text []byte) (Head, bool) {
	var node *yaml.Node
	if text != nil {
		if node = topValue(text); node == nil {
			return Head{}, false
		}
	}
	pr := &problems{}
	var pb Playbook
	parseParams(pr, &pb, node)
	if len(pr.list) > 0 {
		return Head{}, false
	}
	h.Params, h.ParamOrder = pb.Params, pb.ParamOrder
	return h, true
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

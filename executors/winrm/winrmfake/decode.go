package winrmfake

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"
)

var (
	// paramsLiteral is the base64 literal of the prelude line that fills $P.
	paramsLiteral = regexp.MustCompile(`\[Convert\]::FromBase64String\('([^']*)'\)`)
	base64Only    = regexp.MustCompile(`^[A-Za-z0-9+/=]*$`)
)

// ParseCommandLine recovers the script and its parameters from a command line the
// way powershell.exe would: `powershell.exe -EncodedCommand <base64 of UTF-16LE>`.
// The script must carry the executor's prelude with a plain base64 literal whose
// JSON is an object. Host is left empty.
func ParseCommandLine(line string) (Call, error) {
	var call Call
	b64, ok := strings.CutPrefix(line, "powershell.exe -EncodedCommand ")
	if !ok {
		return call, fmt.Errorf("not an encoded PowerShell command: %.80q", line)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw)%2 != 0 {
		return call, fmt.Errorf("bad -EncodedCommand (%d bytes): %v", len(raw), err)
	}
	units := make([]uint16, len(raw)/2)
	for i := range units {
		units[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	call.Raw = string(utf16.Decode(units))

	m := paramsLiteral.FindStringSubmatchIndex(call.Raw)
	if m == nil {
		return call, fmt.Errorf("script has no parameter literal:\n%s", call.Raw)
	}
	literal := call.Raw[m[2]:m[3]]
	if !base64Only.MatchString(literal) {
		return call, fmt.Errorf("parameter literal is not plain base64: %q", literal)
	}
	if call.ParamsJSON, err = base64.StdEncoding.DecodeString(literal); err != nil {
		return call, fmt.Errorf("parameter literal: %w", err)
	}
	if err := json.Unmarshal(call.ParamsJSON, &call.Params); err != nil || call.Params == nil {
		return call, fmt.Errorf("parameters are not a JSON object: %q (%v)", call.ParamsJSON, err)
	}
	// The prelude ends with the line that fills $P.
	nl := strings.IndexByte(call.Raw[m[1]:], '\n')
	if nl < 0 {
		return call, fmt.Errorf("nothing follows the prelude:\n%s", call.Raw)
	}
	call.Script = call.Raw[m[1]+nl+1:]
	return call, nil
}

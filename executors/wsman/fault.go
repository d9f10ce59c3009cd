package wsman

import (
	"encoding/xml"
	"strings"

	"github.com/ndrbot/ndrbot/executors"
)

// FaultError is a SOAP fault the WinRM service answered with ([MS-WSMV] 2.2.2):
// w:QuotaLimit when the user holds too many shells, w:TimedOut when a Receive saw
// no output within the OperationTimeout, w:AccessDenied, w:InvalidSelectors (the
// shell is gone), w:InternalError, …
type FaultError struct {
	Subcode string // e.g. "w:QuotaLimit"; the fault code when there is no subcode
	Reason  string
	Code    string // WSManFault code, e.g. "2150859173"
	Machine string
}

func (f *FaultError) Error() string {
	msg := "wsman fault " + f.Subcode
	if f.Code != "" {
		msg += " (" + f.Code + ")"
	}
	if f.Reason != "" {
		msg += ": " + f.Reason
	}
	// masterzen/winrm polls a Receive again only when the error text mentions
	// OperationTimeout; keep that true even if a server words the reason differently.
	if f.Local() == "TimedOut" && !strings.Contains(msg, "OperationTimeout") {
		msg += " (OperationTimeout)"
	}
	return msg
}

// Unwrap classifies the faults the engine branches on.
func (f *FaultError) Unwrap() error {
	if f.Local() == "AccessDenied" {
		return executors.ErrAuth
	}
	return nil
}

// Local is the subcode without its namespace prefix, e.g. "TimedOut".
func (f *FaultError) Local() string {
	_, name, found := strings.Cut(f.Subcode, ":")
	if !found {
		return f.Subcode
	}
	return name
}

// faultEnvelope is the part of a SOAP 1.2 fault we read (MS-WSMV 2.2.2).
type faultEnvelope struct {
	Body struct {
		Fault *struct {
			Code struct {
				Value   string `xml:"Value"`
				Subcode struct {
					Value string `xml:"Value"`
				} `xml:"Subcode"`
			} `xml:"Code"`
			Reason struct {
				Text []string `xml:"Text"`
			} `xml:"Reason"`
			Detail struct {
				WSManFault struct {
					Code    string `xml:"Code,attr"`
					Machine string `xml:"Machine,attr"`
					Message struct {
						Text          string `xml:",chardata"`
						ProviderFault string `xml:"ProviderFault"`
					} `xml:"Message"`
				} `xml:"WSManFault"`
			} `xml:"Detail"`
		} `xml:"Fault"`
	} `xml:"Body"`
}

// ParseFault returns the fault a reply carries, or nil.
func ParseFault(body string) *FaultError {
	if !strings.Contains(body, "Fault") {
		return nil
	}
	var env faultEnvelope
	if err := xml.Unmarshal([]byte(body), &env); err != nil || env.Body.Fault == nil {
		return nil
	}
	f := env.Body.Fault
	w := f.Detail.WSManFault
	out := &FaultError{
		Subcode: strings.TrimSpace(f.Code.Subcode.Value),
		Code:    w.Code,
		Machine: w.Machine,
	}
	if out.Subcode == "" {
		out.Subcode = strings.TrimSpace(f.Code.Value)
	}
	for _, text := range []string{strings.Join(f.Reason.Text, " "), w.Message.Text, w.Message.ProviderFault} {
		if text = strings.Join(strings.Fields(text), " "); text != "" {
			out.Reason = text
			break
		}
	}
	return out
}

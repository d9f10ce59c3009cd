package psrp

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/masterzen/simplexml/dom"
	"github.com/masterzen/winrm/soap"
)

// The WS-Management side of PSRP ([MS-PSRP] 3.1.5.3, [MS-WSMV] 3.1.4): a runspace
// pool is a shell of the PowerShell resource URI, a pipeline is a command in it
// whose CommandId is the pipeline id. Envelopes are built with the library's
// soap package; the simplexml DOM it uses writes text as given, so everything
// we put into it is base64, a GUID, a URI or a fixed word.

const (
	actionCreate  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	actionDelete  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	actionCommand = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
	actionReceive = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
	actionSignal  = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"

	// signalStop asks PowerShell to stop a running pipeline ([MS-PSRP] 3.1.5.3.9;
	// the spelling "crtl" is the protocol's).
	signalStop = "http://schemas.microsoft.com/powershell/signal/crtl_c"
	// signalTerminate releases a finished command's resources on the server.
	signalTerminate = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"

	stateDone = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"

	nsPowerShell = "http://schemas.microsoft.com/powershell"
)

// envelope starts a request with the headers every one carries.
func (c *conn) envelope(action, shellID, timeout string) *soap.SoapMessage {
	msg := soap.NewMessage()
	h := msg.Header().
		To(c.url).
		ReplyTo("http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous").
		MaxEnvelopeSize(maxEnvelope).
		Id("uuid:" + mustGUID()).
		Locale("en-US").
		Timeout(timeout).
		Action(action).
		ResourceURI(c.resourceURI)
	if shellID != "" {
		h.ShellId(shellID)
	}
	switch action {
	case actionCreate:
		// The header builder writes an option's name unescaped between quotes;
		// this constant uses that to add MustComply, which PowerShell's own
		// client sends so the server refuses a protocol it cannot speak.
		h.AddOption(soap.NewHeaderOption(`protocolversion" MustComply="true`, "2.3"))
	case actionReceive:
		h.AddOption(soap.NewHeaderOption("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "TRUE"))
	}
	h.Build()
	return msg
}

func createRequest(c *conn, shellID string, creation []byte, idle string) *soap.SoapMessage {
	msg := c.envelope(actionCreate, "", c.opTimeout)
	shell := msg.CreateBodyElement("Shell", soap.DOM_NS_WIN_SHELL)
	shell.SetAttr("ShellId", shellID)
	msg.CreateElement(shell, "InputStreams", soap.DOM_NS_WIN_SHELL).SetContent("stdin pr")
	msg.CreateElement(shell, "OutputStreams", soap.DOM_NS_WIN_SHELL).SetContent("stdout")
	if idle != "" {
		msg.CreateElement(shell, "IdleTimeOut", soap.DOM_NS_WIN_SHELL).SetContent(idle)
	}
	msg.CreateElement(shell, "creationXml", dom.Namespace{Prefix: "pwsh", Uri: nsPowerShell}).
		SetContent(base64.StdEncoding.EncodeToString(creation))
	return msg
}

func commandRequest(c *conn, shellID, commandID string, fragment []byte) *soap.SoapMessage {
	msg := c.envelope(actionCommand, shellID, c.opTimeout)
	line := msg.CreateBodyElement("CommandLine", soap.DOM_NS_WIN_SHELL)
	line.SetAttr("CommandId", commandID)
	// An empty Command: the pipeline is in the Arguments ([MS-PSRP] 3.1.5.3.3).
	msg.CreateElement(line, "Command", soap.DOM_NS_WIN_SHELL)
	msg.CreateElement(line, "Arguments", soap.DOM_NS_WIN_SHELL).SetContent(base64.StdEncoding.EncodeToString(fragment))
	return msg
}

func receiveRequest(c *conn, shellID, commandID string) *soap.SoapMessage {
	msg := c.envelope(actionReceive, shellID, c.opTimeout)
	r := msg.CreateBodyElement("Receive", soap.DOM_NS_WIN_SHELL)
	s := msg.CreateElement(r, "DesiredStream", soap.DOM_NS_WIN_SHELL)
	if commandID != "" {
		s.SetAttr("CommandId", commandID)
	}
	s.SetContent("stdout")
	return msg
}

func signalRequest(c *conn, shellID, commandID, code string) *soap.SoapMessage {
	msg := c.envelope(actionSignal, shellID, c.opTimeout)
	s := msg.CreateBodyElement("Signal", soap.DOM_NS_WIN_SHELL)
	s.SetAttr("CommandId", commandID)
	msg.CreateElement(s, "Code", soap.DOM_NS_WIN_SHELL).SetContent(code)
	return msg
}

func deleteRequest(c *conn, shellID string) *soap.SoapMessage {
	msg := c.envelope(actionDelete, shellID, c.opTimeout)
	msg.NewBody()
	return msg
}

// receiveResponse is the part of a ReceiveResponse we read.
type receiveResponse struct {
	Body struct {
		Receive struct {
			Streams []struct {
				Name      string `xml:"Name,attr"`
				CommandID string `xml:"CommandId,attr"`
				Data      string `xml:",chardata"`
			} `xml:"Stream"`
			State *struct {
				CommandID string `xml:"CommandId,attr"`
				State     string `xml:"State,attr"`
			} `xml:"CommandState"`
		} `xml:"ReceiveResponse"`
	} `xml:"Body"`
}

// parseReceive returns the decoded stream bytes, in order, and whether the
// command is done.
func parseReceive(body string) (chunks [][]byte, done bool, err error) {
	var r receiveResponse
	if err := xml.Unmarshal([]byte(body), &r); err != nil {
		return nil, false, fmt.Errorf("ReceiveResponse: %w", err)
	}
	for _, s := range r.Body.Receive.Streams {
		if s.Name != "stdout" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s.Data))
		if err != nil {
			return nil, false, fmt.Errorf("ReceiveResponse stream: %w", err)
		}
		chunks = append(chunks, b)
	}
	st := r.Body.Receive.State
	return chunks, st != nil && st.State == stateDone, nil
}

package winrmfake

import (
	"embed"
	"fmt"
)

// Fault names a SOAP fault the server can answer with (see faults/README.md).
type Fault string

// The faults the server knows.
const (
	// FaultQuota is w:QuotaLimit: the user holds MaxShellsPerUser shells.
	FaultQuota Fault = "quota"
	// FaultAccessDenied is w:AccessDenied: the account may not open a shell.
	FaultAccessDenied Fault = "access-denied"
	// FaultInternal is w:InternalError, here "The filename or extension is too long."
	FaultInternal Fault = "internal"
	// FaultTimedOut is w:TimedOut: no output within the OperationTimeout.
	FaultTimedOut Fault = "timedout"
)

//go:embed faults/*.xml
var faults embed.FS

// Body is the fault's SOAP envelope as WinRM sends it; "" for an unknown fault.
func (f Fault) Body() string {
	b, err := faults.ReadFile("faults/" + string(f) + ".xml")
	if err != nil {
		return ""
	}
	return string(b)
}

// SignalResponse is the envelope WinRM answers a Signal with, relating to the
// request with MessageID relatesTo: a reply that is no fault, for tests of reply
// parsing.
func SignalResponse(relatesTo string) string { return fmt.Sprintf(signalReply, relatesTo) }

// Reply envelopes, shaped like masterzen/winrm's fixture_test.go captures of WinRM.
const (
	envelopeOpen = `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">`

	createShellReply = envelopeOpen + `<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse</a:Action><a:MessageID>uuid:195078CF-804B-41F7-A246-9CB3C1A41A9A</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header>` +
		`<s:Body><x:ResourceCreated><a:Address>%s/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>` +
		`<rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><rsp:ShellId>%s</rsp:ShellId><rsp:ResourceUri>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</rsp:ResourceUri><rsp:Owner>CONTOSO\svc-ndrbot</rsp:Owner><rsp:ClientIP>10.0.4.20</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell></s:Body></s:Envelope>`

	commandReply = envelopeOpen + `<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse</a:Action><a:MessageID>uuid:D9E108AA-E32B-45E3-8601-E9C70999D3BA</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse></s:Body></s:Envelope>`

	receiveReply = envelopeOpen + `<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse</a:Action><a:MessageID>uuid:AAD46BD4-6315-4C3C-93D4-94A55773287D</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><rsp:ReceiveResponse>%s%s</rsp:ReceiveResponse></s:Body></s:Envelope>`

	signalReply = envelopeOpen + `<s:Header><a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse</a:Action><a:MessageID>uuid:8A875D1B-B0E3-4B5B-8D2C-8F6A0D4C9A11</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body><rsp:SignalResponse/></s:Body></s:Envelope>`

	deleteReply = envelopeOpen + `<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse</a:Action><a:MessageID>uuid:1D5F4B1A-7C4E-4E0B-9E55-0C2C8E7B2F3D</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body></s:Body></s:Envelope>`
)

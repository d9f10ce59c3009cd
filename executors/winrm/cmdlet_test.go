package winrm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
)

// What PSSerializer.Serialize(@(Get-Queue …), 2) prints for one queue in the
// Exchange Management Shell: the array as an Obj holding an LST, each queue an
// Obj with its properties one level deep (enums and identities carry their
// ToString). Shape per [MS-PSRP] 2.2.5 and the Get-Queue property list on
// Microsoft Learn; not captured from a live server.
const queueCLIXML = `<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
<Obj RefId="0"><TN RefId="0"><T>System.Object[]</T><T>System.Array</T><T>System.Object</T></TN>
<LST><Obj RefId="1"><TN RefId="1"><T>Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo</T><T>System.Object</T></TN>
<ToString>EX01\7</ToString>
<Props>
<Obj N="Identity" RefId="2"><TN RefId="2"><T>Microsoft.Exchange.Data.QueueViewer.QueueIdentity</T><T>System.Object</T></TN><ToString>EX01\7</ToString></Obj>
<Obj N="DeliveryType" RefId="3"><TN RefId="3"><T>Microsoft.Exchange.Data.DeliveryType</T><T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>SmartHostConnectorDelivery</ToString><I32>10</I32></Obj>
<Obj N="Status" RefId="4"><TN RefId="4"><T>Microsoft.Exchange.Data.QueueViewer.QueueStatus</T><T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>Retry</ToString><I32>2</I32></Obj>
<I32 N="MessageCount">1523</I32>
<S N="NextHopDomain">contoso-com.mail.protection.outlook.com</S>
<S N="LastError">451 4.4.0 Primary target IP address responded with: "421 4.4.2 Connection dropped due to SocketError."</S>
<DT N="NextRetryTime">2026-12-03T08:05:00+01:00</DT>
</Props></Obj></LST></Obj>
</Objs>`

func TestCmdletRunsAsDataInAPlainShell(t *testing.T) {
	const hostile = `x'; Remove-Mailbox ceo -Confirm:$false; '$(whoami)` + "`n]]>"
	f := winrmfake.New(t, func(winrmfake.Call) winrmfake.Reply { return winrmfake.Reply{Stdout: queueCLIXML} })
	e := executor(t, f)
	since := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	out, err := e.Run(t.Context(), host, executors.Action{
		Step: "queues", Cmdlet: "Get-Queue", Timeout: 10 * time.Second,
		Args: []executors.Arg{
			{Name: "Server", Value: hostile},
			{Name: "ResultSize", Value: "Unlimited"},
			{Name: "Start", Value: since},
			{Name: "IncludeBehindFirewall", Value: true},
		},
		Select: []string{"Identity", "DeliveryType", "Status", "MessageCount", "NextRetryTime", "Velocity"},
	})
	require.NoError(t, err)

	call := lastCall(t, f)
	assert.NotContains(t, call.Raw, "Get-Queue", "the cmdlet's name travels as data too")
	assert.NotContains(t, call.Raw, "Remove-Mailbox", "a value leaked into the script")
	assert.Equal(t, "Get-Queue", call.Params["@cmdlet"])
	assert.Equal(t, []any{
		map[string]any{"n": "Server", "v": hostile},
		map[string]any{"n": "ResultSize", "v": "Unlimited"},
		map[string]any{"n": "Start", "v": "2026-12-03T07:00:00Z"},
		map[string]any{"n": "IncludeBehindFirewall", "v": true},
	}, call.Params["@args"])

	assert.JSONEq(t, `[{"Identity":"EX01\\7","DeliveryType":"SmartHostConnectorDelivery","Status":"Retry",
		"MessageCount":1523,"NextRetryTime":"2026-12-03T07:05:00Z","Velocity":null}]`, string(out.Stdout))
}

func TestCmdletNameIsChecked(t *testing.T) {
	f := winrmfake.New(t, func(winrmfake.Call) winrmfake.Reply { return winrmfake.Reply{Stdout: "<Objs/>"} })
	e := executor(t, f)
	_, err := e.Run(t.Context(), host, executors.Action{Step: "q", Cmdlet: "Get-Queue; Remove-Item", Timeout: time.Second})
	require.ErrorContains(t, err, "is not a cmdlet name")
	assert.Empty(t, f.Calls(), "nothing reached the server")
}

func TestCmdletOutputMustBeCLIXML(t *testing.T) {
	f := winrmfake.New(t, func(winrmfake.Call) winrmfake.Reply { return winrmfake.Reply{Stdout: `[{"Identity":"EX01\\7"}]`} })
	e := executor(t, f)
	_, err := e.Run(t.Context(), host, executors.Action{Step: "q", Cmdlet: "Get-Queue", Timeout: 10 * time.Second})
	require.ErrorContains(t, err, "output is not CLIXML")
}

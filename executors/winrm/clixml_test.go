package winrm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCleanStderr(t *testing.T) {
	const objs = `<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">`
	progress := readTestdata(t, "stderr-progress.clixml")
	mailboxError := readTestdata(t, "stderr-error.clixml")
	wantMailbox := "Get-Mailbox : The operation couldn't be performed because object 'alice@contoso.com' couldn't be found\n" +
		"on 'DC01.contoso.com'.\n" +
		"At line:4 char:1\n" +
		"+ Get-Mailbox -Identity $P.sender | Select-Object ThrottlingPolicy | ConvertTo-Json\n" +
		"+ " + strings.Repeat("~", len("Get-Mailbox -Identity $P.sender | Select-Object ThrottlingPolicy | ConvertTo-Json")) + "\n" +
		"    + CategoryInfo          : NotSpecified: (:) [Get-Mailbox], ManagementObjectNotFoundException\n" +
		"    + FullyQualifiedErrorId : 7A3D6F1B,Microsoft.Exchange.Management.RecipientTasks.GetMailbox"

	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"progress only", progress, ""},
		{"error records", mailboxError, wantMailbox},
		{"plain text", "'nslookup' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n",
			"'nslookup' is not recognized as an internal or external command,\noperable program or batch file."},
		{"warning, verbose and information records", "#< CLIXML\r\n" + objs +
			`<S S="warning">The command completed successfully but no settings of 'EX01\3' have been modified._x000D__x000A_</S>` +
			`<S S="verbose">Searching for queues._x000D__x000A_</S>` +
			`<Obj S="information" RefId="0"><MS><Obj N="MessageData" RefId="1"><S>hello</S></Obj></MS></Obj></Objs>`, ""},
		{"surrogate pair and escaped underscore", "#< CLIXML\r\n" + objs +
			`<S S="Error">launch _xD83D__xDE80_ failed: _x005F_x000D_ stays literal_x000D__x000A_</S></Objs>`,
			"launch 🚀 failed: _x000D_ stays literal"},
		{"text before a block", "native error\r\n" + progress, "native error"},
		{"two blocks", progress + mailboxError, wantMailbox},
		{"block cut short", mailboxError[:strings.Index(mailboxError, "At line")], "Get-Mailbox : The operation couldn't be performed because object 'alice@contoso.com' couldn't be found\non 'DC01.contoso.com'."},
		{"header without XML", "#< CLIXML\r\nsomething broke", "#< CLIXML\nsomething broke"},
		{"header alone", "#< CLIXML\r\n", ""},
		{"invalid UTF-8 from an OEM code page", "#< CLIXML\r\n" + objs + "<S S=\"Error\">Module werden f\x81r erstmalige Verwendung vorbereitet.</S></Objs>",
			"Module werden f\uFFFDr erstmalige Verwendung vorbereitet."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, cleanStderr([]byte(tt.in)))
		})
	}
}

func TestHeadLines(t *testing.T) {
	assert.Equal(t, "a / b / c", headLines("\n a \n\nb\nc\nd\n", 3))
	assert.Equal(t, "only", headLines("only", 3))
	long := headLines(strings.Repeat("é", 600), 3)
	assert.Equal(t, 501, len([]rune(long)), "cut at 500 runes plus the ellipsis")
}

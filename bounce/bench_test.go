package bounce

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse: a sample of each kind, and input near the size limit shaped
// to hit the costly paths (long folded fields, many recipients, many codes).
func BenchmarkParse(b *testing.B) {
	const recipientLines = "u@fabrikam.com\nRemote Server returned '550 5.1.1 x'\n"
	inputs := map[string][]byte{
		"exo-eml":         readSample(b, "exo-5.7.708.eml"),
		"postfix-eml":     readSample(b, "postfix-4.3.2.eml"),
		"outlook-text":    readSample(b, "outlook-paste-multi.txt"),
		"folded-1MiB":     []byte("Final-Recipient: rfc822; a@fabrikam.com\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550\n" + strings.Repeat(" y\n", (MaxSize-100)/3)),
		"recipients-1MiB": []byte(strings.Repeat(recipientLines, MaxSize/len(recipientLines))),
		"codes-1MiB":      []byte(strings.Repeat("550 5.1.1 ", MaxSize/10)),
		"distinct-recipients-1MiB": func() []byte {
			var sb strings.Builder
			for i := 0; sb.Len() < MaxSize-100; i++ {
				fmt.Fprintf(&sb, "u%d@fabrikam.com\nRemote Server returned '550 5.1.1 x'\n", i)
			}
			return []byte(sb.String())
		}(),
	}
	for name, in := range inputs {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				_, _ = Parse(in)
			}
		})
	}
}

func BenchmarkChoose(b *testing.B) {
	rep, err := Parse(readSample(b, "dsn-fields-4.4.7.txt"))
	if err != nil {
		b.Fatal(err)
	}
	cands := plannedCandidates()
	for b.Loop() {
		_ = Choose(rep, cands)
	}
}

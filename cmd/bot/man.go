package main

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newManCmd is the hidden `man DIR`: one man page (section 1) per command,
// generated from the command tree, for packagers (.goreleaser.yaml runs it).
func newManCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write a man page for every command into DIR",
		Long:   "Dated $SOURCE_DATE_EPOCH when set (reproducible builds), else the build's commit date, else today.",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			when, err := g.manDate()
			if err != nil {
				return usageErr("%v", err)
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			n, err := writeManPages(cmd.Root(), args[0], manHeader{
				Section: "1",
				Date:    when,
				Source:  "ndrbot " + currentBuild().Version,
				Manual:  "ndrbot manual",
			})
			if err != nil {
				return fmt.Errorf("man: %w", err)
			}
			fmt.Fprintf(g.io.out, "wrote %d man pages to %s\n", n, args[0])
			return nil
		},
	}
}

// manDate is when the pages say they were made: $SOURCE_DATE_EPOCH
// (reproducible-builds.org), else the stamped commit date, else now.
func (g *globals) manDate() (time.Time, error) {
	if v, ok := g.io.getenv("SOURCE_DATE_EPOCH"); ok && v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", v)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, currentBuild().Date); err == nil {
		return t.UTC(), nil
	}
	return time.Now().UTC(), nil
}

// manHeader is a page's .TH line, but for its title: the command's path.
type manHeader struct {
	Section, Source, Manual string
	Date                    time.Time
}

// writeManPages writes a page for root and every command under it that help
// lists (not the hidden ones, not `help`), named after its path:
// "<root>-runs-list.1".
func writeManPages(root *cobra.Command, dir string, header manHeader) (int, error) {
	n := 0
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		var page bytes.Buffer
		writeManPage(&page, c, header)
		if err := os.WriteFile(filepath.Join(dir, manPageName(c, header.Section)), page.Bytes(), 0o644); err != nil {
			return err
		}
		n++
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return n, walk(root)
}

// writeManPage writes c's page in roff, with the sections cobra/doc's GenMan
// writes. It is written here, not with cobra/doc: that package renders
// Markdown through go-md2man and blackfriday, whose start-up alone cost every
// ndrbot process — a diagnosis, --version — a fifth of a hello-world's whole
// run, for a hidden command that packagers run once per release. Nor does
// this page carry an "Auto generated … on <today>" line, which would make
// each build's pages differ.
func writeManPage(w *bytes.Buffer, c *cobra.Command, h manHeader) {
	c.InitDefaultHelpFlag()
	name := strings.ReplaceAll(c.CommandPath(), " ", "-")
	fmt.Fprintf(w, ".nh\n.TH %s %s %s %s %s\n", roffArg(strings.ToUpper(name)), roffArg(h.Section),
		roffArg(h.Date.Format("Jan 2006")), roffArg(h.Source), roffArg(h.Manual))
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roffText(name), roffText(c.Short))
	fmt.Fprintf(w, ".SH SYNOPSIS\n\\fB%s\\fP\n", roffText(c.UseLine()))
	w.WriteString(".SH DESCRIPTION\n")
	roffParagraphs(w, cmp.Or(c.Long, c.Short))
	if flags := c.NonInheritedFlags(); flags.HasAvailableFlags() {
		w.WriteString(".SH OPTIONS\n")
		roffFlags(w, flags)
	}
	if flags := c.InheritedFlags(); flags.HasAvailableFlags() {
		w.WriteString(".SH OPTIONS INHERITED FROM PARENT COMMANDS\n")
		roffFlags(w, flags)
	}
	if c.Example != "" {
		fmt.Fprintf(w, ".SH EXAMPLE\n.EX\n%s\n.EE\n", roffLines(c.Example))
	}
	var see []string
	if c.HasParent() {
		see = append(see, fmt.Sprintf("\\fB%s\\fP(%s)", roffText(strings.ReplaceAll(c.Parent().CommandPath(), " ", "-")), h.Section))
	}
	children := c.Commands()
	slices.SortFunc(children, func(a, b *cobra.Command) int { return strings.Compare(a.Name(), b.Name()) })
	for _, sub := range children {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			see = append(see, fmt.Sprintf("\\fB%s\\fP(%s)", roffText(name+"-"+sub.Name()), h.Section))
		}
	}
	if len(see) > 0 {
		fmt.Fprintf(w, ".SH SEE ALSO\n%s\n", strings.Join(see, ", "))
	}
}

// roffFlags lists flags as cobra/doc does: -s, --name=default, its usage
// indented below.
func roffFlags(w *bytes.Buffer, flags *pflag.FlagSet) {
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Deprecated != "" || f.Hidden {
			return
		}
		w.WriteString(".TP\n")
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			fmt.Fprintf(w, "\\fB\\-%s\\fP, ", roffText(f.Shorthand))
		}
		def := f.DefValue
		if f.Value.Type() == "string" {
			def = strconv.Quote(def)
		}
		def = "=" + def
		if f.NoOptDefVal != "" {
			def = "[" + def + "]"
		}
		fmt.Fprintf(w, "\\fB\\-\\-%s\\fP%s\n%s\n", roffText(f.Name), roffText(def), roffLines(f.Usage))
	})
}

// roffParagraphs writes text's paragraphs (split at blank lines): filled, but
// for one whose every line is indented, an example kept as it is typed.
func roffParagraphs(w *bytes.Buffer, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			w.WriteString(".PP\n")
		}
		lines := strings.Split(para, "\n")
		indented := !slices.ContainsFunc(lines, func(l string) bool {
			return l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t")
		})
		if indented {
			fmt.Fprintf(w, ".EX\n%s\n.EE\n", roffLines(para))
			continue
		}
		w.WriteString(roffLines(para) + "\n")
	}
}

// roffLines is text as roff reads it back, line for line: roffText, and a
// line that roff would take for a request (a leading . or ') made plain.
func roffLines(text string) string {
	lines := strings.Split(roffText(text), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// roffText escapes what roff would read otherwise: the escape character, and
// hyphens, which it may set as typographic ones (wrong in a flag or a path).
var roffText = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace

// roffArg is s as one quoted argument of a request (.TH).
func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roffText(s), `"`, `\(dq`) + `"`
}

func manPageName(c *cobra.Command, section string) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-") + "." + section
}

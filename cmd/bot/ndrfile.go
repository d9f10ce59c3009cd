package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/ndrbot/ndrbot/bounce"
	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/internal/lazyre"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// ndrIntake is what `ndrbot diagnose --ndr-file FILE` starts from: the bounce,
// the playbook chosen for it and the parameters to run it with.
type ndrIntake struct {
	ndr    *commands.NDR
	choice bounce.Choice
	fits   bool // the choice fits the bounce (not only a playbook the admin named)
	pb     *playbooks.Playbook
	// args are the parameters: what the bounce filled that the playbook
	// accepts, with the admin's key=value on top.
	args commands.Args
	// words are what the admin asked, for usage lines and the audit trail:
	// the playbook and their own key=value, never the bounce's values.
	words []string
	given commands.Args // the admin's own key=value
}

// record is what the run's audit command keeps of the bounce: the file's
// digest and what was read from it, not its text.
func (in *ndrIntake) record(path string) map[string]any {
	r := in.ndr.Record()
	r["file"], r["playbook"], r["matched"], r["fits"] = path, in.pb.ID, in.choice.Matched, in.fits
	return r
}

// readNDRFile reads FILE, or standard input for "-", up to one byte past
// bounce.MaxSize so that an over-long report is refused rather than cut.
func readNDRFile(path string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErr("--ndr-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, bounce.MaxSize+1))
	if err != nil {
		return nil, usageErr("--ndr-file %s: reading it: %v", path, err)
	}
	return data, nil
}

// ndrIntake reads the bounce and decides what runs: the playbook the admin
// named, else the one that fits; several fitting are asked about on a
// terminal (ask), listed with the command for each otherwise; none fitting is
// answered with the closest. Every refusal is a usage error (exit 2) and
// nothing is recorded before the choice is made.
func (g *globals) ndrIntake(f *diagnoseFlags, cat *playbooks.Catalog, args []string, in *bufio.Reader, ask bool) (*ndrIntake, error) {
	given, err := commands.ArgsFromWords(args)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if len(given.Positional) > 1 {
		return nil, usageErr("unexpected argument %q: with --ndr-file, give at most a playbook, then key=value parameters", given.Positional[1])
	}
	data, err := readNDRFile(f.ndrFile, in)
	if err != nil {
		return nil, err
	}
	n, err := commands.ReadNDR(data, cat)
	if msg, ok := commands.NDRProblem(err); ok {
		return nil, usageErr("--ndr-file %s does not read as a bounce. %s", f.ndrFile, msg)
	}
	if err != nil {
		return nil, err
	}
	read := "Read " + n.Summary()
	it := &ndrIntake{ndr: n, given: given}
	fits := n.Selection.Fits
	switch {
	case len(given.Positional) == 1:
		if it.pb, err = cat.Resolve(given.Positional[0]); err != nil {
			return nil, usageErr("%v", err)
		}
		it.choice, it.fits = n.ChoiceFor(it.pb)
	case len(fits) == 1:
		it.choice, it.fits = fits[0], true
	case len(fits) > 1:
		c, err := g.askChoice(f, cat, given, read, fits, in, ask)
		if err != nil {
			return nil, err
		}
		it.choice, it.fits = c, true
	default:
		return nil, usageErr("%s; %s", read, closestListing(f, cat, given, n))
	}
	if it.pb == nil {
		if it.pb, err = cat.Resolve(it.choice.ID); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	vals, missing := commands.ChoiceArgs(it.pb, it.choice, given.Named)
	it.words = []string{it.pb.ID}
	for _, k := range given.Order {
		it.words = append(it.words, k+"="+given.Named[k])
	}
	if len(missing) > 0 {
		return nil, usageErr("%s; %s fits it, but it does not say %s: give %s\nusage: ndrbot diagnose %s %s",
			read, it.pb.ID, strings.Join(missing, ", "), placeholders(it.pb, missing),
			rerun(f, it.pb.ID, given), commands.ParamUsage(it.pb))
	}
	it.args = commands.Args{Named: vals}
	for _, name := range it.pb.ParamOrder {
		if _, ok := vals[name]; ok {
			it.args.Order = append(it.args.Order, name)
		}
	}
	how := "running " + it.pb.ID
	if !it.fits {
		how += " as asked, though it does not fit the bounce"
		if it.choice.Reason != "" {
			how += " (" + commands.ShownReason(it.choice) + ")"
		}
	}
	w := g.io.out
	if f.json {
		w = g.io.err // stdout holds the JSON report alone
	}
	fmt.Fprintf(w, "%s; %s\n", read, how)
	return it, nil
}

// askChoice lists the fitting playbooks, best first; on a terminal the admin
// picks one by number, otherwise the list (with the command that runs each)
// is the usage error.
func (g *globals) askChoice(f *diagnoseFlags, cat *playbooks.Catalog, given commands.Args, read string, fits []bounce.Choice,
	in *bufio.Reader, ask bool) (bounce.Choice, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s; %d playbooks fit it, best first:", read, len(fits))
	for i, c := range fits {
		writeOption(&b, cat, strconv.Itoa(i+1)+". ", c, rerun(f, c.ID, given))
	}
	if !ask {
		return bounce.Choice{}, usageErr("%s\nChoose one and run its command.", b.String())
	}
	fmt.Fprintf(g.io.out, "%s\nWhich one? [1-%d, Enter for none] ", b.String(), len(fits))
	line, _ := in.ReadString('\n')
	k, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || k < 1 || k > len(fits) {
		return bounce.Choice{}, usageErr("no playbook chosen; nothing was run")
	}
	return fits[k-1], nil
}

// closestListing answers a bounce no playbook fits: the nearest ones, why, and
// how to run each anyway.
func closestListing(f *diagnoseFlags, cat *playbooks.Catalog, given commands.Args, n *commands.NDR) string {
	code := params.Sanitize(n.Bounce.Code().String())
	if len(n.Selection.Closest) == 0 {
		return fmt.Sprintf("no playbook handles %s, nor a code near it (ndrbot playbooks list shows them).", code)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no playbook handles %s. The closest:", code)
	for _, c := range n.Selection.Closest[:min(len(n.Selection.Closest), 3)] {
		writeOption(&b, cat, "", c, rerun(f, c.ID, given))
	}
	return b.String()
}

// writeOption writes one playbook of a listing: its id and title, why, the
// values the bounce gives it, and the command that runs it.
func writeOption(b *strings.Builder, cat *playbooks.Catalog, num string, c bounce.Choice, cmd string) {
	title := ""
	pb, err := cat.Resolve(c.ID)
	if err == nil {
		title = " — " + pb.Title
	}
	fmt.Fprintf(b, "\n  %s%s%s\n      %s", num, c.ID, title, commands.ShownReason(c))
	if pb != nil {
		vals, missing := commands.ChoiceArgs(pb, c, nil)
		var ps []string
		for k, v := range vals {
			ps = append(ps, k+"="+params.Sanitize(v))
		}
		sort.Strings(ps)
		if len(ps) > 0 {
			fmt.Fprintf(b, "\n      from the bounce: %s", strings.Join(ps, " "))
		}
		if len(missing) > 0 {
			fmt.Fprintf(b, "\n      it does not say %s: add %s", strings.Join(missing, ", "), placeholders(pb, missing))
		}
	}
	fmt.Fprintf(b, "\n      ndrbot diagnose %s", cmd)
}

func placeholders(pb *playbooks.Playbook, names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%s=<%s>", n, pb.Params[n].Type)
	}
	return strings.Join(out, " ")
}

// rerun is the command line, after `ndrbot diagnose`, that runs playbook id on
// the same bounce: the file, the admin's own parameters and the lab, quoted for
// a POSIX shell. The bounce's values stay out: they are read again from the file.
func rerun(f *diagnoseFlags, id string, given commands.Args) string {
	words := []string{id, "--ndr-file", shellQuote(f.ndrFile)}
	for _, k := range given.Order {
		words = append(words, shellQuote(k+"="+given.Named[k]))
	}
	switch {
	case f.lab.scenario != "":
		words = append(words, "--lab", shellQuote(f.lab.scenario))
	case f.lab.file != "":
		words = append(words, "--lab-file", shellQuote(f.lab.file))
	}
	return strings.Join(words, " ")
}

var shellSafe = lazyre.New(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellQuote writes s as one word of a POSIX shell.
func shellQuote(s string) string {
	if shellSafe().MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

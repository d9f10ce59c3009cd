package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// processBench builds the floor, a hello-world Go binary, and the bot as
// released (go build ./cmd/bot: not this test binary, whose own start-up and
// main differ), and returns them with a timer of whole processes: each run in an
// empty directory of its own, with env added.
// A run must exit with one of the codes given (none: 0).
type processBench struct {
	b     *testing.B
	hello string
	bin   string // ndrbot
	work  string
	env   []string
}

func newProcessBench(b *testing.B, env ...string) *processBench {
	b.Helper()
	dir := b.TempDir()
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	// Both built as the release is (.goreleaser.yaml, held by
	// TestGoreleaserConfig): static, without the symbol table and DWARF.
	release := func(out, pkg string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		return cmd
	}
	hello := filepath.Join(dir, "hello")
	if out, err := release(hello, src).CombinedOutput(); err != nil {
		b.Skipf("cannot build the hello-world floor: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "ndrbot")
	if out, err := release(bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/bot: %v\n%s", err, out)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		b.Fatal(err)
	}
	return &processBench{b: b, hello: hello, bin: bin, work: work, env: append(withoutTestVars(os.Environ()), env...)}
}

// floor times one run of the hello-world binary.
func (p *processBench) floor() time.Duration { return p.time([]int{0}, p.hello) }

// bot times one run of the bot with args, which must exit with one of codes.
func (p *processBench) bot(codes []int, args ...string) time.Duration {
	return p.time(codes, p.bin, args...)
}

func (p *processBench) time(codes []int, name string, args ...string) time.Duration {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = p.work, p.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		p.b.Fatalf("%s %v: %v", name, args, err)
	}
	if !slices.Contains(codes, code) {
		p.b.Fatalf("%s %v: exit %d, want %v\n%s", name, args, code, codes, out)
	}
	return took
}

// BenchmarkDiagnoseProcess times `ndrbot diagnose 5.5.4 --lab healthy` as a whole
// process (the released binary: start-up, configuration,
// playbooks, store, diagnosis, exit) against its floor, a hello-world Go binary
// built for the purpose, alternately in one run so the machine's noise moves
// both alike; x-hello is the ratio of their mean wall times, x-hello-median
// of their medians, which a neighbour's burst on this shared machine moves
// less.
func BenchmarkDiagnoseProcess(b *testing.B) {
	p := newProcessBench(b)
	var bot, floor []time.Duration
	for b.Loop() {
		floor = append(floor, p.floor())
		bot = append(bot, p.bot([]int{0}, "diagnose", "5.5.4", "--lab", "healthy"))
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(mean(bot)), "bot-ms")
	b.ReportMetric(ms(mean(floor)), "hello-ms")
	b.ReportMetric(float64(mean(bot))/float64(mean(floor)), "x-hello")
	b.ReportMetric(ms(median(bot)), "bot-median-ms")
	b.ReportMetric(float64(median(bot))/float64(median(floor)), "x-hello-median")
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

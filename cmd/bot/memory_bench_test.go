package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/slack/slackfake"
)

// BenchmarkServeMemory runs `ndrbot serve --lab healthy` as a process of its own
// against the fake Slack (250 channels, 20 slash commands in flight) and reads
// its resident memory (VmRSS) after a warm-up of 100 diagnoses, after 1000 more
// and after another 1000 — each time once every thread has its findings, the
// outbox is drained and no Web API call came for three seconds. Whatever a
// finished run leaves in memory (its steps and findings, its thread's messages,
// the lab's call log) grows each figure with the number of runs; what does not
// depend on them (connection pools, SQLite's page cache, the runtime's heap
// goal) is reached once. x-1000/warm is the ratio the issue asks to keep within
// 1.2; x-2000/1000 shows whether growth continues. The floor is the process
// itself after its warm-up, measured in the same run.
func BenchmarkServeMemory(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("reads VmRSS from /proc")
	}
	const (
		warm     = 100
		more     = 1000
		channels = 250 // Slack's pace is per channel: spread the threads
	)
	for b.Loop() {
		fake := slackfake.New(slackfake.Options{})
		work := b.TempDir()
		cmd := exec.Command(os.Args[0], "serve", "--lab", "healthy")
		cmd.Dir = work
		cmd.Env = append(append(os.Environ(), serveEnv(fake)...), "NDRBOT_TEST_AS_BOT=1", "NDRBOT_LOG_LEVEL=warn")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var logTail tail
		go logTail.read(stderr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := fake.WaitConnections(ctx, 1); err != nil {
			b.Fatalf("ndrbot serve did not connect: %v\n%s", err, logTail.String())
		}
		cancel()

		sent := 0
		diagnose := func(n int) {
			var wg sync.WaitGroup
			sem := make(chan struct{}, 20)
			for range n {
				i := sent
				sent++
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					ch := fmt.Sprintf("C0MEM%03d", i%channels)
					if _, err := fake.SlashCommand(context.Background(), slackfake.SlashCommand{UserID: requesterU, UserName: "req",
						ChannelID: ch, ChannelName: fmt.Sprintf("inc-mem-%03d", i%channels), Text: "diagnose 5.5.4"}); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
			settle(b, fake, sent, channels, &logTail)
		}
		diagnose(warm)
		warmed := rss(b, cmd.Process.Pid)
		start := time.Now()
		diagnose(more)
		took := time.Since(start)
		first := rss(b, cmd.Process.Pid)
		diagnose(more)
		second := rss(b, cmd.Process.Pid)

		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		fake.Close()
		b.ReportMetric(float64(warmed)/1024, "rss-warm-MB")
		b.ReportMetric(float64(first)/1024, "rss-1000-MB")
		b.ReportMetric(float64(second)/1024, "rss-2000-MB")
		b.ReportMetric(float64(first)/float64(warmed), "x-1000/warm")
		b.ReportMetric(float64(second)/float64(first), "x-2000/1000")
		b.ReportMetric(took.Seconds(), "s-first-1000")
	}
}

// settle waits until every diagnosis sent has its root message and findings in
// its thread, and no Web API call came for three seconds (edits coalesced, the
// outbox drained).
func settle(b *testing.B, fake *slackfake.Server, want, channels int, log *tail) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	quiet, last := time.Now(), -1
	for time.Now().Before(deadline) {
		roots, replies := 0, 0
		for c := range channels {
			for _, m := range fake.Messages(fmt.Sprintf("C0MEM%03d", c)) {
				if m.ThreadTS == "" || m.ThreadTS == m.TS {
					roots++
				} else {
					replies++
				}
			}
		}
		calls := len(fake.Calls())
		if calls != last {
			last, quiet = calls, time.Now()
		}
		if roots >= want && replies >= want && time.Since(quiet) > 3*time.Second {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("the outbox did not deliver %d diagnoses within 10 minutes\n%s", want, log.String())
}

// rss is a process's resident set in KiB (VmRSS of /proc/PID/status).
func rss(b *testing.B, pid int) int {
	b.Helper()
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// tail keeps the last lines a process wrote, for a failure's message.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) read(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		t.mu.Lock()
		t.lines = append(t.lines, sc.Text())
		if len(t.lines) > 40 {
			t.lines = t.lines[1:]
		}
		t.mu.Unlock()
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDiagnoseProcess times `bot diagnose 5.5.4 --lab healthy` as a whole
// process (this test binary re-executed as the bot: start-up, configuration,
// playbooks, store, diagnosis, exit) against its floor, a hello-world Go binary
// built for the purpose, alternately in one run so the machine's noise moves
// both alike; x-hello is the ratio of their wall times.
func BenchmarkDiagnoseProcess(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	hello := filepath.Join(dir, "hello")
	if out, err := exec.Command("go", "build", "-o", hello, src).CombinedOutput(); err != nil {
		b.Skipf("cannot build the hello-world floor: %v\n%s", err, out)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "NDRBOT_TEST_AS_BOT=1")
	timeRun := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = work, env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	var bot, floor time.Duration
	for b.Loop() {
		floor += timeRun(hello)
		bot += timeRun(os.Args[0], "diagnose", "5.5.4", "--lab", "healthy")
	}
	b.ReportMetric(float64(bot.Milliseconds())/float64(b.N), "bot-ms")
	b.ReportMetric(float64(floor.Microseconds())/1000/float64(b.N), "hello-ms")
	b.ReportMetric(float64(bot)/float64(floor), "x-hello")
}

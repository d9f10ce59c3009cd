package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Stamped at link time (string variables, so -X can set them):
//
//	go build -trimpath -ldflags "-X main.version=1.4.0 -X main.commit=$(git rev-parse HEAD) -X main.date=2026-11-23T10:00:00Z" -o ndrbot ./cmd/bot
//
// .goreleaser.yaml, the Dockerfile and scripts/image all do; scripts/image's tests
// hold them to these names.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// buildInfo is what `ndrbot version` reports.
type buildInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Date     string `json:"date,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes (VCS stamp)
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// currentBuild is the stamped version, commit and date; what the linker was not
// given comes from the Go toolchain's build info (module version, vcs.revision,
// vcs.time: `go install …@v1.4.0` or a plain `go build` in a git checkout).
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(version, commit, date, bi)
}

func describeBuild(version, commit, date string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date,
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return b
	}
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	if b.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	stamped := commit != ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.time":
			if b.Date == "" {
				b.Date = s.Value
			}
		case "vcs.modified":
			// Only meaningful for the revision it came with.
			b.Modified = !stamped && s.Value == "true"
		}
	}
	return b
}

// String is the one-line form, also `ndrbot --version`.
func (b buildInfo) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "ndrbot %s", b.Version)
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		fmt.Fprintf(&s, " (commit %s", c)
		if b.Modified {
			s.WriteString(", modified")
		}
		if b.Date != "" {
			fmt.Fprintf(&s, ", built %s", b.Date)
		}
		s.WriteString(")")
	} else if b.Date != "" {
		fmt.Fprintf(&s, " (built %s)", b.Date)
	}
	fmt.Fprintf(&s, " %s %s", b.Go, b.Platform)
	return s.String()
}

func newVersionCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Long: `Prints the version, commit and build date stamped into the binary at release
(-ldflags -X main.version=… -X main.commit=… -X main.date=…). A build that was not
stamped reports what the Go toolchain recorded: the module version of go install, or
the git revision and commit time of a checkout.`,
		Example: "  ndrbot version\n  ndrbot version --json\n  ndrbot --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			if asJSON {
				enc := json.NewEncoder(g.io.out)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			fmt.Fprintln(g.io.out, b.String())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return c
}

// setVersionFlag gives the root command --version with the same line.
func setVersionFlag(root *cobra.Command) {
	root.Version = currentBuild().String()
	root.SetVersionTemplate("{{.Version}}\n")
}

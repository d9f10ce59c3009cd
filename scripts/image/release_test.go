package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// GoReleaser, syft and docker are not on the CI machine, so the release files are
// checked here offline: what they build, under which name, with which stamps, from
// files that exist, and that the stamps land in variables cmd/bot has.

const repoRoot = "../.."

// goreleaser is the part of .goreleaser.yaml the release depends on.
type goreleaser struct {
	Version     int    `yaml:"version"`
	ProjectName string `yaml:"project_name"`
	Builds      []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		Flags   []string `yaml:"flags"`
		Ldflags []string `yaml:"ldflags"`
		Targets []string `yaml:"targets"`
	} `yaml:"builds"`
	Archives []struct {
		IDs             []string `yaml:"ids"`
		Formats         []string `yaml:"formats"`
		FormatOverrides []struct {
			Goos    string   `yaml:"goos"`
			Formats []string `yaml:"formats"`
		} `yaml:"format_overrides"`
		Files []string `yaml:"files"`
	} `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
	SBOMs []struct {
		Artifacts string `yaml:"artifacts"`
	} `yaml:"sboms"`
	Dockers []struct {
		IDs        []string `yaml:"ids"`
		Dockerfile string   `yaml:"dockerfile"`
		ExtraFiles []string `yaml:"extra_files"`
		Platforms  []string `yaml:"platforms"`
	} `yaml:"dockers_v2"`
	Before struct {
		Hooks []any `yaml:"hooks"` // a command, or a map with cmd and env
	} `yaml:"before"`
}

func TestGoreleaserConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".goreleaser.yaml"))
	require.NoError(t, err)
	var g goreleaser
	require.NoError(t, yaml.Unmarshal(raw, &g))

	assert.Equal(t, 2, g.Version, "GoReleaser v2 schema")
	assert.Equal(t, "ndrbot", g.ProjectName)
	require.Len(t, g.Builds, 1)
	b := g.Builds[0]
	assert.Equal(t, "./cmd/bot", b.Main)
	assert.Equal(t, "ndrbot", b.Binary, "the documented binary name")
	assert.Contains(t, b.Env, "CGO_ENABLED=0")
	assert.Contains(t, b.Flags, "-trimpath")
	assert.Equal(t, []string{"linux_amd64_v1", "linux_arm64_v8.0", "windows_amd64_v1"}, b.Targets)
	assert.Equal(t, []string{"commit", "date", "version"}, stampedVars(t, strings.Join(b.Ldflags, " ")))

	require.Len(t, g.Archives, 1)
	a := g.Archives[0]
	assert.Equal(t, []string{b.ID}, a.IDs)
	assert.Equal(t, []string{"tar.gz"}, a.Formats)
	require.Len(t, a.FormatOverrides, 1)
	assert.Equal(t, "windows", a.FormatOverrides[0].Goos)
	assert.Equal(t, []string{"zip"}, a.FormatOverrides[0].Formats)
	for _, f := range a.Files {
		if strings.ContainsAny(f, "*?[") {
			// Made at release time (man pages, completions): a hook writes there.
			assert.True(t, slices.ContainsFunc(g.Before.Hooks, func(h any) bool {
				cmd := fmt.Sprint(h)
				return !strings.HasPrefix(cmd, "rm ") && strings.Contains(cmd, " "+path.Dir(f))
			}), "archives.files %s: no before hook makes it", f)
			continue
		}
		assert.FileExists(t, filepath.Join(repoRoot, f), "archives.files")
	}
	assert.NotEmpty(t, g.Checksum.NameTemplate)
	require.Len(t, g.SBOMs, 1)
	assert.Equal(t, "archive", g.SBOMs[0].Artifacts)

	require.Len(t, g.Dockers, 1)
	d := g.Dockers[0]
	assert.Equal(t, []string{b.ID}, d.IDs)
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, d.Platforms)
	assert.FileExists(t, filepath.Join(repoRoot, d.Dockerfile))
	for _, f := range d.ExtraFiles {
		assert.DirExists(t, filepath.Join(repoRoot, f), "dockers_v2.extra_files")
	}
	df := readDockerfile(t, d.Dockerfile)
	for _, p := range d.Platforms {
		assert.Equal(t, "linux", strings.Split(p, "/")[0])
	}
	assert.Contains(t, df, "COPY --chmod=0755 $TARGETPLATFORM/"+b.Binary+" "+binaryPath, "the binary GoReleaser puts in the context")
	for _, src := range copySources(df) {
		if strings.HasPrefix(src, "$TARGETPLATFORM/") {
			continue
		}
		assert.True(t, slices.ContainsFunc(d.ExtraFiles, func(e string) bool { return src == e || strings.HasPrefix(src, e+"/") }),
			"%s copies %s, which is not in dockers_v2.extra_files (the context has no sources)", d.Dockerfile, src)
	}
	assertFinalStage(t, d.Dockerfile, df)
}

func TestDockerfile(t *testing.T) {
	df := readDockerfile(t, "Dockerfile")
	assert.Regexp(t, `(?m)^RUN CGO_ENABLED=0 GOOS=\$TARGETOS GOARCH=\$TARGETARCH go build -trimpath \\$`, df)
	assert.Contains(t, df, "-o /rootfs/ndrbot ./cmd/bot", "the binary is ndrbot, at /ndrbot")
	assert.Equal(t, []string{"commit", "date", "version"}, stampedVars(t, df))
	assertFinalStage(t, "Dockerfile", df)
	for _, src := range copySources(df) {
		if src == "." || strings.HasPrefix(src, "/") {
			continue
		}
		assert.FileExists(t, filepath.Join(repoRoot, src))
	}

	// scripts/image stamps the same way.
	assert.Equal(t, []string{"commit", "date", "version"}, stampedVars(t, ldflags("1", "c", "d")))
}

// assertFinalStage holds a Dockerfile's image to scripts/image's.
func assertFinalStage(t *testing.T, name, df string) {
	t.Helper()
	stages := regexp.MustCompile(`(?m)^FROM `).Split(df, -1)
	final := "FROM " + stages[len(stages)-1]
	assert.True(t, strings.HasPrefix(final, "FROM scratch\n"), "%s: the final stage is FROM scratch", name)
	assert.Contains(t, final, "\nUSER "+user+"\n", name)
	assert.Contains(t, final, "\nWORKDIR "+dataDir+"\n", name)
	assert.Contains(t, final, "\nENV "+strings.Join(env, " ")+"\n", name)
	assert.Contains(t, final, `VOLUME ["`+dataDir+`"]`, name)
	assert.Contains(t, final, `ENTRYPOINT ["`+binaryPath+`"]`, name)
	assert.Contains(t, final, `CMD ["serve"]`, name)
	assert.NotRegexp(t, `(?m)^RUN `, final, "%s: nothing runs in the final stage (it has no shell)", name)
	// The other stage makes the same directories with the same owners and modes.
	assert.Contains(t, df, "chown 65532:65532 /rootfs/home/nonroot /rootfs/var/lib/ndrbot", name)
	assert.Contains(t, df, "chmod 0700 /rootfs/home/nonroot /rootfs/var/lib/ndrbot", name)
	assert.Contains(t, df, "chmod 1777 /rootfs/tmp", name)
	assert.Contains(t, df, "cp /etc/ssl/certs/ca-certificates.crt /rootfs"+caBundle, name)
	assert.Contains(t, df, "scripts/image/rootfs/etc/passwd scripts/image/rootfs/etc/group", name)
}

func readDockerfile(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, name))
	require.NoError(t, err)
	return string(raw)
}

// copySources lists the build-context paths a Dockerfile COPYs (not --from).
func copySources(df string) []string {
	var out []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" {
			continue
		}
		args := slices.DeleteFunc(f[1:], func(s string) bool { return strings.HasPrefix(s, "--chmod") || strings.HasPrefix(s, "--chown") })
		if strings.HasPrefix(args[0], "--from") {
			continue
		}
		out = append(out, args[:len(args)-1]...)
	}
	return out
}

// stampedVars returns the main.X variables that -X flags in s set, after checking
// each is a package-level string variable of cmd/bot (the linker ignores -X for a
// name that does not exist, so a typo would silently ship "dev").
func stampedVars(t *testing.T, s string) []string {
	t.Helper()
	vars := botStringVars(t)
	var names []string
	for _, m := range regexp.MustCompile(`-X main\.(\w+)=`).FindAllStringSubmatch(s, -1) {
		assert.Contains(t, vars, m[1], "-X main.%s: cmd/bot has no such package-level string variable", m[1])
		names = append(names, m[1])
	}
	sort.Strings(names)
	return names
}

// botStringVars are cmd/bot's package-level variables that -X can set: declared
// string, or initialised with a string constant.
func botStringVars(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	dir := filepath.Join(repoRoot, "cmd", "bot")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		if f.Name.Name != "main" {
			continue
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					typed := vs.Type != nil && typeName(vs.Type) == "string"
					lit := vs.Type == nil && i < len(vs.Values) && isStringLit(vs.Values[i])
					if typed || lit {
						out = append(out, n.Name)
					}
				}
			}
		}
	}
	return out
}

func typeName(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func isStringLit(e ast.Expr) bool {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return false
	}
	_, err := strconv.Unquote(bl.Value)
	return err == nil
}

// TestReleaseTargetsNeedNoCgo lists cmd/bot's packages for each release target
// with CGO_ENABLED=0 (a go list, not a build: about a second): a dependency that
// needs cgo, or has no files for a target, fails here rather than at release time.
func TestReleaseTargetsNeedNoCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, target := range []string{"linux/amd64", "linux/arm64", "windows/amd64"} {
		goos, goarch, _ := strings.Cut(target, "/")
		cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{with .Error}}{{.}}{{end}}{{range .DepsErrors}}{{.}}{{end}}{{if .CgoFiles}}cgo: {{.ImportPath}}{{end}}", "./cmd/bot")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		// Only the template's output counts: on a new module cache, go list
		// also tells on standard error what it downloads for a target.
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s\n%s%s", target, out, stderr.String())
		assert.Empty(t, strings.TrimSpace(string(out)), target)
	}
}

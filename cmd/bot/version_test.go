package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stamp sets the link-time variables as -ldflags -X would, for one test.
func stamp(t *testing.T, v, c, d string) {
	old := [3]string{version, commit, date}
	version, commit, date = v, c, d
	t.Cleanup(func() { version, commit, date = old[0], old[1], old[2] })
}

func TestVersionStamped(t *testing.T) {
	stamp(t, "1.4.0", "0123456789abcdef0123456789abcdef01234567", "2026-11-23T10:00:00Z")
	want := "ndrbot 1.4.0 (commit 0123456789ab, built 2026-11-23T10:00:00Z) " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH

	r := bot(t, nil, "", false, "version")
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, want+"\n", r.out)

	r = bot(t, nil, "", false, "--version")
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, want+"\n", r.out)

	r = bot(t, nil, "", false, "version", "--json")
	require.Equal(t, 0, r.code, r.err)
	var got buildInfo
	require.NoError(t, json.Unmarshal([]byte(r.out), &got), r.out)
	assert.Equal(t, buildInfo{Version: "1.4.0", Commit: "0123456789abcdef0123456789abcdef01234567", Date: "2026-11-23T10:00:00Z",
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}, got)
}

func TestVersionUnstamped(t *testing.T) {
	stamp(t, "dev", "", "")
	r := bot(t, nil, "", false, "version")
	require.Equal(t, 0, r.code, r.err)
	assert.True(t, strings.HasPrefix(r.out, "ndrbot "), r.out)
	assert.Contains(t, r.out, runtime.Version())

	r = bot(t, nil, "", false, "version", "extra")
	assert.Equal(t, exitUsage, r.code)
}

func TestDescribeBuildFallsBackToBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/ndrbot/ndrbot", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "feedfacecafe0000"}, {Key: "vcs.time", Value: "2026-11-20T08:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}

	// A plain go build in a checkout: the revision and commit time from the VCS stamp.
	b := describeBuild("dev", "", "", vcs)
	assert.Equal(t, "dev", b.Version)
	assert.Equal(t, "feedfacecafe0000", b.Commit)
	assert.Equal(t, "2026-11-20T08:00:00Z", b.Date)
	assert.True(t, b.Modified)
	assert.Equal(t, "ndrbot dev (commit feedfacecafe, modified, built 2026-11-20T08:00:00Z) go1.26.8 "+runtime.GOOS+"/"+runtime.GOARCH, b.String())

	// Stamped values win; "modified" belongs to the VCS revision, not to a stamped one.
	b = describeBuild("1.4.0", "0123abc", "2026-11-23T10:00:00Z", vcs)
	assert.Equal(t, buildInfo{Version: "1.4.0", Commit: "0123abc", Date: "2026-11-23T10:00:00Z", Go: "go1.26.8", Platform: runtime.GOOS + "/" + runtime.GOARCH}, b)

	// go install github.com/ndrbot/ndrbot/cmd/bot@v1.3.0: the module version.
	b = describeBuild("dev", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.3.0"}})
	assert.Equal(t, "ndrbot v1.3.0 go1.26.8 "+runtime.GOOS+"/"+runtime.GOARCH, b.String())

	// No build info at all (never for a Go binary, but harmless).
	b = describeBuild("dev", "", "", nil)
	assert.Equal(t, "ndrbot dev "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH, b.String())
}

package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// standIn is a tiny static ELF executable for arch (on amd64 it really runs: exit(0)),
// so the test builds the image in milliseconds instead of building ndrbot. With
// interp it asks for a dynamic loader, as a cgo build does.
func standIn(t *testing.T, arch string, interp bool) []byte {
	t.Helper()
	code := []byte{0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05} // mov eax,60; xor edi,edi; syscall
	const base, hdr, ph = 0x400000, 64, 56
	nph := uint16(1)
	if interp {
		nph = 2
	}
	interpPath := []byte("/lib64/ld-linux-x86-64.so.2\x00")
	off := uint64(hdr + ph*int(nph))
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elfMachine[arch]), Version: uint32(elf.EV_CURRENT),
		Entry: base + off, Phoff: hdr, Ehsize: hdr, Phentsize: ph, Phnum: nph, Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	size := off + uint64(len(code)) + uint64(len(interpPath))
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base, Filesz: size, Memsz: size, Align: 0x1000}}
	if interp {
		at := off + uint64(len(code))
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: at, Vaddr: base + at, Paddr: base + at,
			Filesz: uint64(len(interpPath)), Memsz: uint64(len(interpPath)), Align: 1})
	}
	var b bytes.Buffer
	require.NoError(t, binary.Write(&b, binary.LittleEndian, h))
	require.NoError(t, binary.Write(&b, binary.LittleEndian, progs))
	b.Write(code)
	b.Write(interpPath)
	return b.Bytes()
}

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

var created = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func testSpec(t *testing.T, arch string) spec {
	return spec{Arch: arch, Binary: standIn(t, arch, false), CACerts: []byte(testPEM),
		Version: "1.4.0", Revision: "0123456789abcdef0123456789abcdef01234567", Created: created}
}

func TestImageFromScratch(t *testing.T) {
	s := testSpec(t, "amd64")
	img, err := buildImage(s)
	require.NoError(t, err)
	mt, err := img.MediaType()
	require.NoError(t, err)
	assert.Equal(t, types.OCIManifestSchema1, mt)

	// Written as a docker/podman-loadable tarball and read back from disk.
	path := filepath.Join(t.TempDir(), "ndrbot.tar")
	ref, err := imageRef(options{version: "1.4.0"})
	require.NoError(t, err)
	require.NoError(t, writeTarball(path, ref, img))
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	require.NoError(t, err)
	require.Len(t, m, 1)
	assert.Equal(t, []string{"ndrbot:1.4.0"}, m[0].RepoTags)

	back, err := tarball.ImageFromPath(path, nil)
	require.NoError(t, err)
	require.NoError(t, validate.Image(back), "layer and config digests, diff ids and sizes")
	require.NoError(t, check(back, "amd64"))

	layers, err := back.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1, "from scratch: no base image, one layer")

	cf, err := back.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux", cf.OS)
	assert.Equal(t, "amd64", cf.Architecture)
	assert.True(t, cf.Created.Time.Equal(created))
	c := cf.Config
	assert.Equal(t, "65532:65532", c.User)
	assert.Equal(t, []string{"/ndrbot"}, c.Entrypoint)
	assert.Equal(t, []string{"serve"}, c.Cmd)
	assert.Equal(t, "/var/lib/ndrbot", c.WorkingDir)
	assert.Equal(t, []string{"HOME=/home/nonroot", "XDG_CONFIG_HOME=/etc", "XDG_DATA_HOME=/var/lib"}, c.Env)
	assert.Equal(t, map[string]struct{}{"/var/lib/ndrbot": {}}, c.Volumes)
	assert.Equal(t, "https://github.com/ndrbot/ndrbot", c.Labels["org.opencontainers.image.source"])
	assert.Equal(t, "1.4.0", c.Labels["org.opencontainers.image.version"])
	assert.Equal(t, s.Revision, c.Labels["org.opencontainers.image.revision"])
	assert.Equal(t, "2026-11-23T10:00:00Z", c.Labels["org.opencontainers.image.created"])

	// The whole filesystem: nothing but these (no shell, no package manager), the
	// binary root-owned and read-only to the bot, its data directory its own.
	fsys, err := files(back)
	require.NoError(t, err)
	type meta struct {
		mode     int64
		uid, gid int
		dir      bool
	}
	got := map[string]meta{}
	for name, f := range fsys {
		got[name] = meta{f.Mode, f.UID, f.GID, f.Dir}
	}
	assert.Equal(t, map[string]meta{
		"/etc":                               {0o755, 0, 0, true},
		"/etc/group":                         {0o644, 0, 0, false},
		"/etc/ndrbot":                        {0o755, 0, 0, true},
		"/etc/passwd":                        {0o644, 0, 0, false},
		"/etc/ssl":                           {0o755, 0, 0, true},
		"/etc/ssl/certs":                     {0o755, 0, 0, true},
		"/etc/ssl/certs/ca-certificates.crt": {0o644, 0, 0, false},
		"/home":                              {0o755, 0, 0, true},
		"/home/nonroot":                      {0o700, 65532, 65532, true},
		"/ndrbot":                            {0o755, 0, 0, false},
		"/tmp":                               {0o1777, 0, 0, true},
		"/var":                               {0o755, 0, 0, true},
		"/var/lib":                           {0o755, 0, 0, true},
		"/var/lib/ndrbot":                    {0o700, 65532, 65532, true},
	}, got)
	assert.Equal(t, s.Binary, fsys["/ndrbot"].Data)
	assert.Equal(t, testPEM, string(fsys["/etc/ssl/certs/ca-certificates.crt"].Data))
	assert.Contains(t, strings.Split(string(fsys["/etc/passwd"].Data), "\n"), "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin")
	assert.Contains(t, strings.Split(string(fsys["/etc/group"].Data), "\n"), "nonroot:x:65532:")

	// Reproducible: the same inputs give the same digest.
	again, err := buildImage(s)
	require.NoError(t, err)
	d1, err := img.Digest()
	require.NoError(t, err)
	d2, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, d1, d2)
}

// TestCommandWritesBoth runs the command as a release would, on prebuilt binaries:
// a tarball for one platform and an OCI layout with an index of two.
func TestCommandWritesBoth(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ndrbot-"+arch), standIn(t, arch, false), 0o755))
	}
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte(testPEM), 0o644))
	stamp := []string{"-ca", ca, "-version", "1.4.0+rc.1", "-commit", "0123abc", "-date", "2026-11-23T10:00:00Z"}

	var out bytes.Buffer
	tarPath := filepath.Join(dir, "ndrbot.tar")
	require.NoError(t, run(append([]string{"-o", tarPath, "-binary", filepath.Join(dir, "ndrbot-amd64")}, stamp...), &out))
	assert.Contains(t, out.String(), "ndrbot:1.4.0-rc.1 linux/amd64, image ID sha256:")

	out.Reset()
	oci := filepath.Join(dir, "oci")
	require.NoError(t, run(append([]string{"-layout", oci, "-platform", "linux/amd64,linux/arm64", "-binary", filepath.Join(dir, "ndrbot-{arch}")}, stamp...), &out))
	top, err := layout.ImageIndexFromPath(oci)
	require.NoError(t, err)
	tm, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, tm.Manifests, 1)
	assert.Equal(t, "1.4.0-rc.1", tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	require.NoError(t, err)
	require.NoError(t, validate.Index(idx))
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.String())
		img, err := idx.Image(m.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, m.Platform.Architecture, cf.Architecture)
	}
	assert.Equal(t, []string{"linux/amd64", "linux/arm64/v8"}, platforms)
	assert.Equal(t, "0123abc", im.Annotations["org.opencontainers.image.revision"])

	// A docker tarball is one platform; several binaries need {arch}.
	require.ErrorContains(t, run(append([]string{"-o", tarPath, "-platform", "linux/amd64,linux/arm64"}, stamp...), &out), "one platform")
	require.ErrorContains(t, run(append([]string{"-layout", oci, "-platform", "linux/amd64,linux/arm64", "-binary", filepath.Join(dir, "ndrbot-amd64")}, stamp...), &out), "{arch}")
	require.ErrorContains(t, run(append([]string{"-o", tarPath, "-platform", "windows/amd64"}, stamp...), &out), "linux/amd64 or linux/arm64")
	// The arm64 binary in an amd64 image.
	require.ErrorContains(t, run(append([]string{"-o", tarPath, "-binary", filepath.Join(dir, "ndrbot-arm64")}, stamp...), &out), "not amd64")
}

func TestCheckStaticRefuses(t *testing.T) {
	require.NoError(t, checkStatic(standIn(t, "amd64", false), "amd64"))
	require.NoError(t, checkStatic(standIn(t, "arm64", false), "arm64"))
	assert.ErrorContains(t, checkStatic(standIn(t, "amd64", true), "amd64"), "CGO_ENABLED=0")
	assert.ErrorContains(t, checkStatic(standIn(t, "arm64", false), "amd64"), "not amd64")
	assert.ErrorContains(t, checkStatic([]byte("#!/bin/sh\necho hi\n"), "amd64"), "not a Linux (ELF) executable")
	assert.ErrorContains(t, checkStatic([]byte("MZ\x90\x00"), "amd64"), "not a Linux (ELF) executable")

	s := testSpec(t, "amd64")
	s.CACerts = nil
	_, err := buildImage(s)
	assert.ErrorContains(t, err, "CA bundle")
}

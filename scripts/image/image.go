package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rootfs holds /etc/passwd and /etc/group with the nonroot user; the Dockerfiles
// copy the same files.
//
//go:embed rootfs/etc/passwd rootfs/etc/group
var rootfs embed.FS

// The image's fixed facts. The Dockerfiles repeat them; release_test.go holds them
// together.
const (
	binaryPath = "/ndrbot"
	uid        = 65532
	user       = "65532:65532"
	// dataDir is the one place the bot writes (the SQLite store): a volume, so the
	// root filesystem can be read-only. Owned by the nonroot user so a fresh named
	// volume inherits that owner.
	dataDir = "/var/lib/ndrbot"
	// configDir is where ndrbot.yaml is found ($XDG_CONFIG_HOME/ndrbot/ndrbot.yaml),
	// for a mounted ConfigMap or file.
	configDir  = "/etc/ndrbot"
	caBundle   = "/etc/ssl/certs/ca-certificates.crt"
	sourceRepo = "https://github.com/ndrbot/ndrbot"
)

// env is the image's environment. No NDRBOT_* variable: the bot refuses unknown ones
// and lets every known one override the config file, so the image sets the XDG
// directories instead — the store defaults to $XDG_DATA_HOME/ndrbot/ndrbot.db
// (/var/lib/ndrbot/ndrbot.db, in the volume) and the config file to
// $XDG_CONFIG_HOME/ndrbot/ndrbot.yaml (/etc/ndrbot/ndrbot.yaml); store.path or
// --config still win.
var env = []string{
	"HOME=/home/nonroot",
	"XDG_CONFIG_HOME=/etc",
	"XDG_DATA_HOME=/var/lib",
}

// spec is one image to build.
type spec struct {
	Arch     string    // GOARCH: amd64 or arm64 (the OS is linux)
	Binary   []byte    // the static ndrbot for that architecture
	CACerts  []byte    // PEM bundle for /etc/ssl/certs/ca-certificates.crt
	Version  string    // label org.opencontainers.image.version
	Revision string    // label org.opencontainers.image.revision
	Created  time.Time // image and file times (the commit time: reproducible)
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkStatic refuses a binary that would not start in an image without a libc or
// dynamic loader: not a 64-bit ELF for arch, or one that asks for an interpreter
// (PT_INTERP) or shared libraries (a cgo build).
func checkStatic(bin []byte, arch string) error {
	want, ok := elfMachine[arch]
	if !ok {
		return fmt.Errorf("architecture %q: want amd64 or arm64", arch)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not a Linux (ELF) executable: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != want {
		return fmt.Errorf("binary is for %s (%s), not %s", f.Machine, f.Class, arch)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("binary is not an executable (%s)", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("binary is dynamically linked (it has an ELF interpreter): build it with CGO_ENABLED=0")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("reading the binary's dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return fmt.Errorf("binary needs shared libraries %v: build it with CGO_ENABLED=0", libs)
	}
	return nil
}

// entry is one file or directory of the image's single layer.
type entry struct {
	name string // absolute path in the image
	mode int64  // permission bits (and sticky)
	uid  int
	dir  bool
	data []byte
}

func entries(s spec) ([]entry, error) {
	passwd, err := rootfs.ReadFile("rootfs/etc/passwd")
	if err != nil {
		return nil, err
	}
	group, err := rootfs.ReadFile("rootfs/etc/group")
	if err != nil {
		return nil, err
	}
	dir := func(name string, mode int64, owner int) entry {
		return entry{name: name, mode: mode, uid: owner, dir: true}
	}
	file := func(name string, mode int64, data []byte) entry { return entry{name: name, mode: mode, data: data} }
	es := []entry{
		dir("/etc", 0o755, 0),
		file("/etc/passwd", 0o644, passwd),
		file("/etc/group", 0o644, group),
		dir(configDir, 0o755, 0),
		dir("/etc/ssl", 0o755, 0),
		dir("/etc/ssl/certs", 0o755, 0),
		file(caBundle, 0o644, s.CACerts),
		dir("/home", 0o755, 0),
		dir("/home/nonroot", 0o700, uid),
		dir("/tmp", 0o1777, 0),
		dir("/var", 0o755, 0),
		dir("/var/lib", 0o755, 0),
		dir(dataDir, 0o700, uid),
		// Owned by root and not writable by the user the bot runs as.
		file(binaryPath, 0o755, s.Binary),
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es, nil
}

// layerTar is the single layer, uncompressed: parents before children, owners and
// times fixed, so the same inputs give the same digest.
func layerTar(s spec) ([]byte, error) {
	es, err := entries(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.name, "/"),
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: s.Created.UTC(),
			Format:  tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// labels are the image's OCI labels (and the manifest's annotations).
func labels(s spec) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "ndrbot",
		"org.opencontainers.image.description": "ndrbot: chat-ops bot for mail incident response (NDR storms on Exchange / Microsoft 365)",
		"org.opencontainers.image.source":      sourceRepo,
		"org.opencontainers.image.url":         sourceRepo,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
	}
	for k, v := range l {
		if v == "" {
			delete(l, k)
		}
	}
	return l
}

// buildImage assembles the image from nothing: no base image is pulled, no daemon
// runs. One layer; OCI media types.
func buildImage(s spec) (v1.Image, error) {
	if err := checkStatic(s.Binary, s.Arch); err != nil {
		return nil, err
	}
	if !bytes.Contains(s.CACerts, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("the CA bundle holds no PEM certificate (the bot talks HTTPS to Slack and Microsoft Graph)")
	}
	raw, err := layerTar(s)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: s.Created.UTC()}, CreatedBy: "go run ./scripts/image", Comment: "ndrbot, CA certificates, nonroot user"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.Arch
	if s.Arch == "arm64" {
		cf.Variant = "v8"
	}
	cf.Author = sourceRepo
	cf.Config = v1.Config{
		User:       user,
		Entrypoint: []string{binaryPath},
		Cmd:        []string{"serve"},
		WorkingDir: dataDir,
		Env:        env,
		Labels:     labels(s),
		Volumes:    map[string]struct{}{dataDir: {}},
		StopSignal: "SIGTERM",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: s.Created.UTC()})
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels(s)).(v1.Image), nil
}

// platform is the image's platform as an index descriptor names it.
func platform(arch string) *v1.Platform {
	p := &v1.Platform{OS: "linux", Architecture: arch}
	if arch == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// file is one entry read back from an image's layers.
type file struct {
	Mode     int64
	UID, GID int
	Dir      bool
	Data     []byte
}

// files reads every layer of img back (the flattened filesystem).
func files(img v1.Image) (map[string]file, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		name := path.Clean("/" + h.Name)
		out[name] = file{Mode: h.Mode, UID: h.Uid, GID: h.Gid, Dir: h.Typeflag == tar.TypeDir, Data: data}
	}
}

// Command image builds ndrbot's OCI image without a Docker daemon and without
// pulling a base image: FROM scratch, one layer with the static binary at /ndrbot,
// /etc/passwd and /etc/group with the nonroot user (65532), the build host's CA
// bundle, and the data volume /var/lib/ndrbot owned by that user. It runs as
// 65532:65532 and writes nowhere but the volume (and /tmp, if the bot ever needs
// it), so it runs with a read-only root filesystem.
//
// From the repository root:
//
//	go run ./scripts/image -o ndrbot.tar                  # docker load / podman load -i ndrbot.tar
//	go run ./scripts/image -platform linux/amd64,linux/arm64 -layout ndrbot-oci   # an OCI layout with an index (crane push, skopeo copy oci:…)
//	go run ./scripts/image -binary ./ndrbot -o ndrbot.tar     # a binary built elsewhere (must be static)
//	go run ./scripts/image -platform linux/amd64,linux/arm64 -binary 'out/linux-{arch}/ndrbot' -layout ndrbot-oci
//
// Without -binary it builds ndrbot for each platform the way the release does:
// CGO_ENABLED=0, -trimpath, -ldflags "-s -w -X main.version=… -X main.commit=…
// -X main.date=…", version from `git describe`, commit and date from HEAD (or
// -version, -commit, -date). The image's times are the commit time, so the same
// commit gives the same digest. What it wrote is read back and checked before it
// exits.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

type options struct {
	out, layoutDir, binary, ca, tag string
	platforms                       []string // GOARCHes
	version, commit, date           string
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var o options
	var platforms string
	fs.StringVar(&o.out, "o", "", "write a docker/podman-loadable tarball (one platform)")
	fs.StringVar(&o.layoutDir, "layout", "", "write an OCI image layout directory (an index of every platform)")
	fs.StringVar(&platforms, "platform", "linux/amd64", "platforms, comma-separated: linux/amd64, linux/arm64")
	fs.StringVar(&o.binary, "binary", "", "use this static ndrbot instead of building one; {arch} in it becomes each platform's GOARCH")
	fs.StringVar(&o.ca, "ca", caBundle, "CA certificate bundle (PEM) to copy into the image")
	fs.StringVar(&o.tag, "tag", "", "image reference in the tarball (default ndrbot:VERSION)")
	fs.StringVar(&o.version, "version", "", "version to stamp (default: git describe --tags --always --dirty)")
	fs.StringVar(&o.commit, "commit", "", "commit to stamp (default: git rev-parse HEAD)")
	fs.StringVar(&o.date, "date", "", "build date to stamp, RFC 3339 (default: $SOURCE_DATE_EPOCH, else HEAD's commit time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.out == "" && o.layoutDir == "" {
		return errors.New("nothing to write: give -o FILE.tar and/or -layout DIR")
	}
	for _, p := range strings.Split(platforms, ",") {
		arch, ok := strings.CutPrefix(strings.TrimSpace(p), "linux/")
		if _, known := elfMachine[arch]; !ok || !known {
			return fmt.Errorf("platform %q: want linux/amd64 or linux/arm64", p)
		}
		o.platforms = append(o.platforms, arch)
	}
	if o.out != "" && len(o.platforms) != 1 {
		return errors.New("a docker tarball holds one platform: give one -platform, or use -layout")
	}
	if o.binary != "" && len(o.platforms) != 1 && !strings.Contains(o.binary, "{arch}") {
		return errors.New("-binary for several platforms needs {arch} in its path")
	}
	return build(o, stdout)
}

func build(o options, stdout io.Writer) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	fillStamp(&o, root)
	created, err := time.Parse(time.RFC3339, o.date)
	if err != nil {
		return fmt.Errorf("-date %q: %w", o.date, err)
	}
	ca, err := os.ReadFile(o.ca)
	if err != nil {
		return fmt.Errorf("CA bundle (install ca-certificates or pass -ca): %w", err)
	}
	tmp, err := os.MkdirTemp("", "ndrbot-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	idx := v1.ImageIndex(empty.Index)
	var first v1.Image
	for _, arch := range o.platforms {
		bin := strings.ReplaceAll(o.binary, "{arch}", arch)
		if bin == "" {
			bin = filepath.Join(tmp, "ndrbot-"+arch)
			if err := goBuild(root, arch, bin, o); err != nil {
				return err
			}
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		img, err := buildImage(spec{Arch: arch, Binary: data, CACerts: ca, Version: o.version, Revision: o.commit, Created: created})
		if err != nil {
			return fmt.Errorf("linux/%s: %w", arch, err)
		}
		if first == nil {
			first = img
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform(arch)}})
	}

	if o.out != "" {
		ref, err := imageRef(o)
		if err != nil {
			return err
		}
		if err := writeTarball(o.out, ref, first); err != nil {
			return err
		}
		back, err := tarball.ImageFromPath(o.out, nil)
		if err != nil {
			return fmt.Errorf("reading %s back: %w", o.out, err)
		}
		if err := check(back, o.platforms[0]); err != nil {
			return fmt.Errorf("%s: %w", o.out, err)
		}
		id, err := back.ConfigName()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s linux/%s, image ID %s (docker load -i %s)\n", o.out, ref, o.platforms[0], id, o.out)
	}
	if o.layoutDir != "" {
		idx = mutate.Annotations(idx, labels(spec{Version: o.version, Revision: o.commit, Created: created})).(v1.ImageIndex)
		ref, err := imageRef(o)
		if err != nil {
			return err
		}
		// index.json names one multi-platform index, as buildkit's OCI exporter does:
		// skopeo copy oci:DIR:TAG and crane push DIR find it by its ref.name.
		p, err := layout.Write(o.layoutDir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.TagStr()})); err != nil {
			return err
		}
		back, err := layout.ImageIndexFromPath(o.layoutDir)
		if err != nil {
			return fmt.Errorf("reading %s back: %w", o.layoutDir, err)
		}
		inner, err := back.ImageIndex(mustDigest(idx))
		if err != nil {
			return fmt.Errorf("reading %s back: %w", o.layoutDir, err)
		}
		if err := validate.Index(inner); err != nil {
			return fmt.Errorf("%s: %w", o.layoutDir, err)
		}
		im, err := inner.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range im.Manifests {
			img, err := inner.Image(m.Digest)
			if err != nil {
				return err
			}
			if err := check(img, m.Platform.Architecture); err != nil {
				return fmt.Errorf("%s linux/%s: %w", o.layoutDir, m.Platform.Architecture, err)
			}
			fmt.Fprintf(stdout, "%s: linux/%s %s\n", o.layoutDir, m.Platform.Architecture, m.Digest)
		}
	}
	return nil
}

func mustDigest(idx v1.ImageIndex) v1.Hash {
	d, err := idx.Digest()
	if err != nil {
		panic(err)
	}
	return d
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

func imageRef(o options) (name.Tag, error) {
	if o.tag != "" {
		return name.NewTag(o.tag)
	}
	t := tagUnsafe.ReplaceAllString(o.version, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	return name.NewTag("ndrbot:" + t)
}

// writeTarball writes img as a docker-loadable tarball (manifest.json, config, the
// layer), which podman and crane also read.
func writeTarball(path string, ref name.Tag, img v1.Image) error {
	return tarball.WriteToFile(path, ref, img)
}

// check holds an image read back to what buildImage promises: valid digests and
// sizes, the platform, the config, and a filesystem with the binary and no shell.
func check(img v1.Image, arch string) error {
	if err := validate.Image(img); err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	c := cf.Config
	switch {
	case cf.OS != "linux" || cf.Architecture != arch:
		return fmt.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	case c.User != user:
		return fmt.Errorf("user %q, want %q", c.User, user)
	case len(c.Entrypoint) != 1 || c.Entrypoint[0] != binaryPath:
		return fmt.Errorf("entrypoint %q", c.Entrypoint)
	}
	fsys, err := files(img)
	if err != nil {
		return err
	}
	bin, ok := fsys[binaryPath]
	if !ok || bin.Mode&0o111 == 0 {
		return fmt.Errorf("%s missing or not executable", binaryPath)
	}
	if err := checkStatic(bin.Data, arch); err != nil {
		return err
	}
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh"} {
		if _, ok := fsys[sh]; ok {
			return fmt.Errorf("image has a shell: %s", sh)
		}
	}
	if d, ok := fsys[dataDir]; !ok || d.UID != uid {
		return fmt.Errorf("%s missing or not owned by %d", dataDir, uid)
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from the ndrbot repository (no go.mod here)")
	}
	return filepath.Dir(gomod), nil
}

// fillStamp fills what the flags left empty from git (or "dev" and the current
// time outside a checkout).
func fillStamp(o *options, root string) {
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	if o.version == "" {
		o.version = strings.TrimPrefix(git("describe", "--tags", "--always", "--dirty"), "v")
		if o.version == "" {
			o.version = "dev"
		}
	}
	if o.commit == "" {
		o.commit = git("rev-parse", "HEAD")
	}
	if o.date == "" {
		sec := os.Getenv("SOURCE_DATE_EPOCH")
		if sec == "" {
			sec = git("log", "-1", "--format=%ct")
		}
		t := time.Now()
		if n, err := strconv.ParseInt(sec, 10, 64); err == nil {
			t = time.Unix(n, 0)
		}
		o.date = t.UTC().Format(time.RFC3339)
	}
}

// ldflags are the release's: .goreleaser.yaml and the Dockerfile pass the same.
func ldflags(version, commit, date string) string {
	return fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.date=%s", version, commit, date)
}

func goBuild(root, arch, out string, o options) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags(o.version, o.commit, o.date), "-o", out, "./cmd/bot")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	fmt.Fprintf(os.Stderr, "image: building ndrbot for linux/%s (CGO_ENABLED=0)\n", arch)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build linux/%s: %w\n%s", arch, err, stderr.String())
	}
	return nil
}

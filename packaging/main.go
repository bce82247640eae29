// Command packaging builds Floorlink's Debian packages: for each gateway architecture a static
// floorlink binary, the systemd unit, the default config and env file as conffiles, and the
// maintainer scripts, written into one .deb with nfpm used as a library, so that `make package`
// needs nothing but Go.
//
//	go run ./packaging --out dist                  # amd64, arm64 and armhf, version from git describe
//	go run ./packaging --arch amd64 --out DIR --version v1.2.3
//
// It prints the path of each package it wrote. Never shipped.
package main

import (
	"context"
	"embed"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// The unit, the default config, the env file template and the maintainer scripts. Embedded so
// the program works from any directory (the package test runs it from its own).
//
//go:embed files
var packageFiles embed.FS

// target is one gateway architecture: Go's GOARCH/GOARM and Debian's name for it.
type target struct {
	goarch, goarm, debian string
}

// targets are DESIGN.md's three gateway platforms, keyed by their Debian architecture.
var targets = map[string]target{
	"amd64": {goarch: "amd64", debian: "amd64"},
	"arm64": {goarch: "arm64", debian: "arm64"},
	"armhf": {goarch: "arm", goarm: "7", debian: "armhf"},
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "packaging:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("packaging", flag.ContinueOnError)
	out := fl.String("out", "dist", "directory for the .deb files")
	archs := fl.String("arch", "amd64,arm64,armhf", "Debian architectures, comma-separated")
	version := fl.String("version", "", "version, as `git describe --tags --always --dirty` prints it (default: that)")
	commit := fl.String("commit", "", "commit hash for `floorlink version` (default: git rev-parse HEAD)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if *version == "" {
		*version = gitOutput(ctx, "describe", "--tags", "--always", "--dirty")
	}
	if *version == "" {
		*version = "dev"
	}
	if *commit == "" {
		*commit = gitOutput(ctx, "rev-parse", "HEAD")
	}
	debVersion, err := DebianVersion(*version)
	if err != nil {
		return err
	}

	var chosen []target
	for _, a := range strings.Split(*archs, ",") {
		t, ok := targets[strings.TrimSpace(a)]
		if !ok {
			return fmt.Errorf("--arch %q: want amd64, arm64 or armhf", a)
		}
		chosen = append(chosen, t)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "floorlink-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// nfpm reads contents and scripts from files: write the embedded ones out once.
	if err := os.CopyFS(work, packageFiles); err != nil {
		return fmt.Errorf("write package files: %w", err)
	}
	for _, t := range chosen {
		bin := filepath.Join(work, "floorlink-"+t.debian)
		if err := buildBinary(ctx, bin, t, *version, *commit); err != nil {
			return err
		}
		path, err := writeDeb(filepath.Join(work, "files"), bin, *out, t, debVersion)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

// gitOutput returns git's trimmed output, or "" outside a git checkout.
func gitOutput(ctx context.Context, args ...string) string {
	b, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// buildTags are the Makefile's BUILDTAGS: net/http without HTTP/2, which the agent never speaks.
const buildTags = "nethttpomithttp2"

// buildBinary builds the agent as the Makefile's build target does: static (no cgo, so one
// binary runs on any Debian of that architecture), -trimpath, version and commit stamped in.
func buildBinary(ctx context.Context, bin string, t target, version, commit string) error {
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", version, commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", buildTags, "-ldflags", ldflags, "-o", bin,
		"github.com/floorlink/floorlink/cmd/floorlink")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build floorlink for %s: %w\n%s", t.debian, err, out)
	}
	return nil
}

// writeDeb writes out/floorlink_<version>_<arch>.deb and returns its path.
func writeDeb(dir, bin, out string, t target, version string) (string, error) {
	info := packageInfo(dir, bin, t, version)
	path := filepath.Join(out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("package %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, nil
}

// packageInfo describes the package. Every file is root-owned in the archive: the group
// floorlink may not exist yet when dpkg unpacks, so postinst gives the config to it.
func packageInfo(dir, bin string, t target, version string) *nfpm.Info {
	file := func(src, dst, typ string, mode fs.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode}}
	}
	in := func(name string) string { return filepath.Join(dir, name) }
	return &nfpm.Info{
		Name:          "floorlink",
		Arch:          t.debian,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none", // DebianVersion made it a valid Debian version already
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "Floorlink developers <noreply@floorlink.invalid>",
		Description: "Shop-floor edge agent: PLCs to durable buffer to MQTT\n" +
			"Polls PLCs over Modbus and OPC UA, keeps every record in a local buffer until\n" +
			"the MQTT broker has it, computes production KPIs and publishes both.",
		License: "Apache-2.0",
		Overridables: nfpm.Overridables{
			// postinst creates the system user with useradd or adduser.
			Depends: []string{"passwd | adduser"},
			Contents: files.Contents{
				file(bin, "/usr/bin/floorlink", "", 0o755),
				file(in("floorlink.service"), "/lib/systemd/system/floorlink.service", "", 0o644),
				file(in("floorlink.yaml"), "/etc/floorlink/floorlink.yaml", files.TypeConfigNoReplace, 0o640),
				file(in("env"), "/etc/floorlink/env", files.TypeConfigNoReplace, 0o600),
			},
			Scripts: nfpm.Scripts{
				PostInstall: in("postinst"),
				PreRemove:   in("prerm"),
				PostRemove:  in("postrm"),
			},
		},
	}
}

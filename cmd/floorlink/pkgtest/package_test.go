// Package pkgtest tests what an operator installs and upgrades: the .deb that `make package`
// builds, installed with dpkg into a directory the test makes (never into the machine), and the
// built agent on a buffer file an older release wrote.
package pkgtest

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/floorlink/floorlink/cmd/floorlink/floorlinktest"
)

// agentBin is the floorlink binary, built once for the package without -race.
var agentBin string

func TestMain(m *testing.M) { floorlinktest.Main(m, &agentBin) }

// needDpkg fails the test when Debian's dpkg tools are missing.
func needDpkg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the package test needs Debian's dpkg; run make deps on Debian", tool)
		}
	}
}

// buildPackage builds the amd64 package the way `make package` does (go run ./packaging) into
// dir and returns its path.
func buildPackage(t *testing.T, dir, version string) string {
	t.Helper()
	cmd := exec.Command("go", "run", "github.com/floorlink/floorlink/packaging",
		"--arch", "amd64", "--out", dir, "--version", version, "--commit", "0123456789abcdef")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go run ./packaging: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go run ./packaging: %v", err)
	}
	path := strings.TrimSpace(string(out))
	if filepath.Dir(path) != dir || !strings.HasSuffix(path, "_amd64.deb") {
		t.Fatalf("packaging printed %q, want a .deb in %s", out, dir)
	}
	return path
}

// dpkgRoot is an empty system root with its own dpkg database, for dpkg --root.
type dpkgRoot struct {
	dir string
}

func newDpkgRoot(t *testing.T) *dpkgRoot {
	t.Helper()
	r := &dpkgRoot{dir: t.TempDir()}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"} {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(r.path(f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *dpkgRoot) path(rel string) string { return filepath.Join(r.dir, rel) }

// dpkg runs dpkg on the root and returns its output. The flags keep it away from the machine
// and let it run unprivileged: --root (files, database, and DPKG_ROOT for the maintainer
// scripts), --force-script-chrootless (the scripts run on the host, a chroot needs root and a
// shell in the root), --force-not-root, --force-bad-path (no ldconfig on a user's PATH),
// --force-depends (the root has no passwd package), --force-confold (never ask).
func (r *dpkgRoot) dpkg(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"--root=" + r.dir, "--admindir=" + r.path("var/lib/dpkg"),
		"--log=" + r.path("var/log/dpkg.log"), "--force-not-root", "--force-bad-path",
		"--force-script-chrootless", "--force-depends", "--force-confold"}, args...)
	cmd := exec.Command("dpkg", full...)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// status returns dpkg-query's status and version of floorlink in the root, "" when unknown.
func (r *dpkgRoot) status(t *testing.T, format string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+r.path("var/lib/dpkg"), "-W", "-f="+format, "floorlink").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// TestPackage_InstallUpgradePurge: the amd64 package installs into an empty root with the
// files, modes, unit and conffiles an operator relies on; its config validates with the
// installed binary; an upgrade keeps an edited config; remove keeps config and data; purge
// leaves nothing behind.
func TestPackage_InstallUpgradePurge(t *testing.T) {
	needDpkg(t)
	out := t.TempDir()
	deb := buildPackage(t, out, "v1.2.3")

	checkControl(t, deb, "1.2.3")

	r := newDpkgRoot(t)
	log := r.dpkg(t, "--install", deb)
	if got := r.status(t, "${Status} ${Version}"); got != "install ok installed 1.2.3" {
		t.Fatalf("after install: status %q", got)
	}
	// Under --root, postinst creates no user on this machine and says so.
	if !strings.Contains(log, "not creating the user floorlink") {
		t.Errorf("postinst did not say it skipped the user under DPKG_ROOT:\n%s", log)
	}

	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{
		{"usr/bin/floorlink", 0o755},
		{"lib/systemd/system/floorlink.service", 0o644},
		{"etc/floorlink/floorlink.yaml", 0o640},
		{"etc/floorlink/env", 0o600},
		{"var/lib/floorlink", fs.ModeDir | 0o750}, // made by postinst
	} {
		fi, err := os.Stat(r.path(f.path))
		if err != nil {
			t.Errorf("installed file: %v", err)
			continue
		}
		if fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
	}
	checkUnit(t, r.path("lib/systemd/system/floorlink.service"), r.path("usr/bin/floorlink"))

	conffiles := strings.Fields(r.status(t, "${Conffiles}"))
	if !slices.Contains(conffiles, "/etc/floorlink/floorlink.yaml") || !slices.Contains(conffiles, "/etc/floorlink/env") {
		t.Errorf("dpkg lists conffiles %q, want /etc/floorlink/floorlink.yaml and /etc/floorlink/env", conffiles)
	}
	env, err := os.ReadFile(r.path("etc/floorlink/env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		if !strings.HasPrefix(line, "#") {
			t.Errorf("etc/floorlink/env sets %q; it must ship comments only", line)
		}
	}

	// The installed binary runs, and accepts the installed config.
	cfg := r.path("etc/floorlink/floorlink.yaml")
	if b, err := exec.Command(r.path("usr/bin/floorlink"), "validate", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("floorlink validate -c %s: %v\n%s", cfg, err, b)
	} else if !strings.Contains(string(b), ": ok (") {
		t.Errorf("validate said %q", b)
	}
	if b, err := exec.Command(r.path("usr/bin/floorlink"), "version").Output(); err != nil ||
		!strings.HasPrefix(string(b), "floorlink v1.2.3 commit 0123456789abcdef") {
		t.Errorf("floorlink version: %q, %v", b, err)
	}

	// Upgrade with an edited config: dpkg keeps the operator's file, the binary is new.
	edited := "# edited on site\n" + readFile(t, cfg)
	if err := os.WriteFile(cfg, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	deb2 := buildPackage(t, t.TempDir(), "v1.2.4-rc.1")
	r.dpkg(t, "--install", deb2)
	if got := r.status(t, "${Version}"); got != "1.2.4~rc.1" {
		t.Fatalf("after upgrade: version %q", got)
	}
	if readFile(t, cfg) != edited {
		t.Error("the upgrade replaced the edited config")
	}
	if b, _ := exec.Command(r.path("usr/bin/floorlink"), "version").Output(); !strings.HasPrefix(string(b), "floorlink v1.2.4-rc.1 ") {
		t.Errorf("after upgrade: floorlink version %q", b)
	}

	// An agent's data, and the link `systemctl enable` makes.
	if err := os.WriteFile(r.path("var/lib/floorlink/buffer.db"), []byte("records"), 0o600); err != nil {
		t.Fatal(err)
	}
	wants := r.path("etc/systemd/system/multi-user.target.wants/floorlink.service")
	if err := os.MkdirAll(filepath.Dir(wants), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/floorlink.service", wants); err != nil {
		t.Fatal(err)
	}

	r.dpkg(t, "--remove", "floorlink")
	for _, gone := range []string{"usr/bin/floorlink", "lib/systemd/system/floorlink.service",
		"etc/systemd/system/multi-user.target.wants/floorlink.service"} {
		if _, err := os.Lstat(r.path(gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after remove, %s: %v, want it gone", gone, err)
		}
	}
	for _, kept := range []string{"etc/floorlink/floorlink.yaml", "etc/floorlink/env", "var/lib/floorlink/buffer.db"} {
		if _, err := os.Stat(r.path(kept)); err != nil {
			t.Errorf("after remove (not purge), %s: %v, want it kept", kept, err)
		}
	}

	r.dpkg(t, "--purge", "floorlink")
	for _, gone := range []string{"usr/bin/floorlink", "lib/systemd/system/floorlink.service",
		"etc/floorlink", "var/lib/floorlink"} {
		if _, err := os.Lstat(r.path(gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after purge, %s: %v, want it gone", gone, err)
		}
	}
	if got := r.status(t, "${Status}"); got != "" && got != "unknown ok not-installed" {
		t.Errorf("after purge: status %q", got)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkControl reads the package's control fields and control archive.
func checkControl(t *testing.T, deb, version string) {
	t.Helper()
	for field, want := range map[string]string{"Package": "floorlink", "Version": version, "Architecture": "amd64"} {
		b, err := exec.Command("dpkg-deb", "--field", deb, field).Output()
		if err != nil {
			t.Fatalf("dpkg-deb --field %s: %v", field, err)
		}
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("control %s: %q, want %q", field, got, want)
		}
	}
	cmd := exec.Command("dpkg-deb", "--ctrl-tarfile", deb)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	modes := map[string]fs.FileMode{}
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		files[name], modes[name] = string(b), h.FileInfo().Mode()
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	conffiles := strings.Fields(files["conffiles"])
	slices.Sort(conffiles)
	if diff := cmp.Diff([]string{"/etc/floorlink/env", "/etc/floorlink/floorlink.yaml"}, conffiles); diff != "" {
		t.Errorf("conffiles (-want +got):\n%s", diff)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if modes[s] != 0o755 || !strings.HasPrefix(files[s], "#!/bin/sh\n") {
			t.Errorf("control %s: mode %v, starts %.20q; want 0755 and #!/bin/sh", s, modes[s], files[s])
		}
	}
}

// unit is a parsed systemd unit file: section → key → values in order (keys may repeat).
type unit map[string]map[string][]string

// parseUnit reads the subset of systemd.syntax(7) the shipped unit uses: [Section] headers,
// Key=Value lines, # and ; comments.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: not a Key=Value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// checkUnit checks the lines of the unit an operator and the issue rely on, and that ExecStart
// uses flags the installed binary has.
func checkUnit(t *testing.T, path, bin string) {
	t.Helper()
	u := parseUnit(t, path)
	svc := u["Service"]
	if svc == nil {
		t.Fatal("unit has no [Service]")
	}
	one := func(key, want string) {
		t.Helper()
		if got := svc[key]; len(got) != 1 || got[0] != want {
			t.Errorf("[Service] %s=%q, want exactly %q", key, got, want)
		}
	}
	one("Type", "notify")
	one("ExecStart", "/usr/bin/floorlink run -c /etc/floorlink/floorlink.yaml --data-dir /var/lib/floorlink")
	one("User", "floorlink")
	one("Group", "floorlink")
	one("SupplementaryGroups", "dialout")
	one("StateDirectory", "floorlink")
	one("Restart", "on-failure")
	one("ProtectSystem", "strict")
	one("ProtectHome", "yes")
	one("PrivateTmp", "yes")
	one("NoNewPrivileges", "yes")
	one("EnvironmentFile", "-/etc/floorlink/env")
	if w := svc["WatchdogSec"]; len(w) != 1 || w[0] == "" || w[0] == "0" {
		t.Errorf("WatchdogSec=%q, want one non-zero value", w)
	}
	if !slices.ContainsFunc(svc["Environment"], func(s string) bool { return strings.HasPrefix(s, "GOMEMLIMIT=") }) {
		t.Errorf("Environment=%q, want GOMEMLIMIT set", svc["Environment"])
	}
	// Serial ports: no PrivateDevices (it hides /dev/tty*), and the tty kinds allowed.
	if v := svc["PrivateDevices"]; len(v) > 0 && v[len(v)-1] != "no" {
		t.Errorf("PrivateDevices=%q hides the serial ports", v)
	}
	for _, dev := range []string{"char-ttyS rw", "char-ttyUSB rw"} {
		if !slices.Contains(svc["DeviceAllow"], dev) {
			t.Errorf("DeviceAllow=%q, want %q for RS-485", svc["DeviceAllow"], dev)
		}
	}
	// Its loopback HTTP listener and the network to PLCs and brokers; journald and notify.
	if fams := strings.Fields(strings.Join(svc["RestrictAddressFamilies"], " ")); !slices.Contains(fams, "AF_INET") ||
		!slices.Contains(fams, "AF_UNIX") {
		t.Errorf("RestrictAddressFamilies=%q, want AF_INET and AF_UNIX", fams)
	}
	if v := svc["IPAddressDeny"]; len(v) > 0 {
		t.Errorf("IPAddressDeny=%q would cut the agent off its PLCs", v)
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("[Install] WantedBy=%q", got)
	}

	help, err := exec.Command(bin, "run", "--help").Output()
	if err != nil {
		t.Fatalf("floorlink run --help: %v", err)
	}
	for _, arg := range strings.Fields(svc["ExecStart"][0]) {
		if strings.HasPrefix(arg, "-") && !strings.Contains(string(help), arg+" ") && !strings.Contains(string(help), arg+",") {
			t.Errorf("ExecStart uses %s, which floorlink run --help does not list", arg)
		}
	}
}

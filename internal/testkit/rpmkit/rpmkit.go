// Package rpmkit builds small RPM packages and dnf repositories with the real rpmbuild,
// rpmsign and createrepo_c (Debian packages rpm and createrepo-c) for tests: the Kubernetes
// packages and a containerd.io stand-in, served to a lab host whose dnf installs them.
// Test tooling only.
package rpmkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/testkit/gpgkit"
)

// Package is an RPM to build.
type Package struct {
	Name, Version, Release string
	// Files maps the path installed to the file it is copied from (mode kept).
	Files map[string]string
	// Contents maps the path installed to its content (mode 0644).
	Contents map[string]string
}

// Tools are the commands the kit runs, for a check that names the packages to install.
var Tools = []string{"rpmbuild", "rpmsign", "createrepo_c", "dnf", "rpm"}

// Require fails the test when a tool is missing, naming the Debian packages.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: apt-get install rpm createrepo-c dnf (.ci/run does)", tool)
		}
	}
}

// Build builds p into dir and returns the RPM's path. The package has no dependencies and
// an uncompressed payload (fast to build; the test's files are what matter).
func Build(t testing.TB, dir string, p Package) string {
	t.Helper()
	top := t.TempDir()
	src := filepath.Join(top, "SOURCES")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	var install, files strings.Builder
	paths := make([]string, 0, len(p.Files)+len(p.Contents))
	for dst := range p.Files {
		paths = append(paths, dst)
	}
	for dst := range p.Contents {
		paths = append(paths, dst)
	}
	sort.Strings(paths)
	for i, dst := range paths {
		from, ok := p.Files[dst]
		mode := "0755"
		if !ok {
			from = filepath.Join(src, fmt.Sprintf("content-%d", i))
			if err := os.WriteFile(from, []byte(p.Contents[dst]), 0o644); err != nil {
				t.Fatal(err)
			}
			mode = "0644"
		}
		fmt.Fprintf(&install, "install -D -m %s '%s' '%%{buildroot}%s'\n", mode, from, dst)
		fmt.Fprintf(&files, "%s\n", dst)
	}
	release := p.Release
	if release == "" {
		release = "1"
	}
	spec := fmt.Sprintf(`Name: %s
Version: %s
Release: %s
Summary: %s (Deckhand test package)
License: Apache-2.0
BuildArch: x86_64
AutoReqProv: no
%%define _binary_payload w.ufdio
%%define __os_install_post %%{nil}
%%define debug_package %%{nil}
%%define _build_id_links none
%%description
%s, packaged by a Deckhand test.
%%install
%s
%%files
%s`, p.Name, p.Version, release, p.Name, p.Name, install.String(), files.String())
	specFile := filepath.Join(top, p.Name+".spec")
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmbuild", "--define", "_topdir "+top, "-bb", specFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild %s: %v\n%s", p.Name, err, out)
	}
	built, _ := filepath.Glob(filepath.Join(top, "RPMS", "x86_64", "*.rpm"))
	if len(built) != 1 {
		t.Fatalf("rpmbuild %s made %v", p.Name, built)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(built[0]))
	if err := os.Rename(built[0], out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Sign signs the RPMs with key (rpmsign --addsign, the key's gpg home).
func Sign(t testing.TB, key *gpgkit.Key, rpms ...string) {
	t.Helper()
	args := []string{"--define", "__gpg /usr/bin/gpg", "--define", "_gpg_name " + key.Name, "--define", "_gpg_path " + key.Home,
		"--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''", "--addsign"}
	cmd := exec.Command("rpmsign", append(args, rpms...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmsign: %v\n%s", err, out)
	}
}

// Repo makes dir a dnf repository (createrepo_c) and puts key's public key next to its
// metadata, where pkgs.k8s.io serves its own (repodata/repomd.xml.key).
func Repo(t testing.TB, dir string, key *gpgkit.Key) {
	t.Helper()
	if out, err := exec.Command("createrepo_c", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c %s: %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "repodata", "repomd.xml.key"), key.Armored, 0o644); err != nil {
		t.Fatal(err)
	}
}

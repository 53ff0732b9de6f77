package rpmkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/testkit/gpgkit"
)

// The kit's packages install with the real dnf (into a root of the test's own), signed
// packages pass the GPG check with their key and fail it with another.
func TestBuildSignServe(t *testing.T) {
	Require(t)
	key, other := gpgkit.New(t, "Repo"), gpgkit.New(t, "Other")
	repo := t.TempDir()
	bin := filepath.Join(t.TempDir(), "hello")
	os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755)
	rpm := Build(t, repo, Package{Name: "hello-dh", Version: "1.2.3", Files: map[string]string{"/usr/bin/hello-dh": bin}, Contents: map[string]string{"/etc/hello-dh.conf": "x=1\n"}})
	Sign(t, key, rpm)
	Repo(t, repo, key)

	dnf := func(gpgkey string) (string, error) {
		root := t.TempDir()
		conf := filepath.Join(t.TempDir(), "dnf.conf")
		os.WriteFile(conf, []byte("[main]\nreposdir=/dev/null\n[t]\nname=t\nbaseurl=file://"+repo+"\ngpgcheck=1\ngpgkey=file://"+gpgkey+"\n"), 0o644)
		out, err := exec.Command("dnf", "-c", conf, "--installroot="+root, "--releasever=9", "--setopt=cachedir="+t.TempDir(), "-y", "install", "hello-dh-1.2.3").CombinedOutput()
		if err == nil {
			if _, serr := os.Stat(filepath.Join(root, "usr/bin/hello-dh")); serr != nil {
				t.Fatalf("dnf installed nothing: %v", serr)
			}
		}
		return string(out), err
	}
	if out, err := dnf(filepath.Join(repo, "repodata", "repomd.xml.key")); err != nil {
		t.Fatalf("dnf install with the repository's key: %v\n%s", err, out)
	}
	otherKey := filepath.Join(t.TempDir(), "other.asc")
	os.WriteFile(otherKey, other.Armored, 0o644)
	if out, err := dnf(otherKey); err == nil || !strings.Contains(out, "GPG") {
		t.Fatalf("dnf install with another key: %v\n%s", err, out)
	}
}

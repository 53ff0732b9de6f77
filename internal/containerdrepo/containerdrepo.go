// Package containerdrepo is the dnf repository containerd.io comes from on Rocky Linux,
// AlmaLinux and RHEL hosts: Docker's by default (the only one that publishes containerd.io
// for them) with its signing key pinned by Docker's published fingerprint, or a mirror with
// its own. The cluster file's validation and the agent's runtime task share these rules.
package containerdrepo

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/pgpkey"
	"github.com/deckhandhq/deckhand/internal/safetext"
)

// Docker's repository (its "centos" tree, which Docker's guides give for Rocky Linux and
// AlmaLinux too; "rhel" for RHEL) and its signing key's fingerprint as Docker's install
// guide gives it.
const (
	dockerBase           = "https://download.docker.com/linux/%s/$releasever/$basearch/stable"
	dockerKeyURL         = "https://download.docker.com/linux/%s/gpg"
	DockerKeyFingerprint = "060A61C51B558A7F742B77AAC52FEB6B621E9F35"
)

// The repository file and the pinned key the runtime task writes, and the repository's ID.
const (
	File    = "/etc/yum.repos.d/deckhand-containerd.repo"
	KeyFile = "/etc/pki/rpm-gpg/deckhand-containerd.asc"
	ID      = "deckhand-containerd"
)

// Repo is a resolved repository.
type Repo struct {
	Base, KeyURL, Fingerprint string
}

// Resolve is the repository of a dnf host running o: the one given, else Docker's with its
// pinned key. A repository of one's own must give all three settings. An error names the
// setting as the cluster file does, after prefix ("spec.runtime.repository.").
func Resolve(prefix, base, keyURL, fingerprint string, o hostos.OS) (Repo, error) {
	if base == "" && keyURL == "" && fingerprint == "" {
		tree := "centos"
		if o.ID == "rhel" {
			tree = "rhel"
		}
		return Repo{fmt.Sprintf(dockerBase, tree), fmt.Sprintf(dockerKeyURL, tree), DockerKeyFingerprint}, nil
	}
	for _, f := range []struct{ name, v string }{{"baseURL", base}, {"gpgKeyURL", keyURL}} {
		if f.v == "" {
			return Repo{}, fmt.Errorf("%s%s is empty; a repository of your own needs baseURL, gpgKeyURL and gpgKeyFingerprint (leave all three out for Docker's)", prefix, f.name)
		}
		if err := safetext.HTTPURL(prefix+f.name, f.v); err != nil {
			return Repo{}, err
		}
	}
	fp, err := pgpkey.Normalize(fingerprint)
	if err != nil {
		return Repo{}, fmt.Errorf("%sgpgKeyFingerprint: %w", prefix, err)
	}
	return Repo{strings.TrimRight(base, "/"), keyURL, fp}, nil
}

// versionRE is a containerd.io package version: 1.7.27, 1.7.27-3.1.el9.
var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z._]+)?$`)

// CheckVersion: v is empty (the newest) or a containerd.io package version; field names it.
func CheckVersion(field, v string) error {
	if v != "" && !versionRE.MatchString(v) {
		return fmt.Errorf("%s is %q; give a containerd.io package version such as 1.7.27", field, v)
	}
	return nil
}

// RepoFile renders the repository file: signatures checked with the pinned key only, and
// containerd.io excluded from every dnf run but the runtime task's own, so that a dnf
// upgrade never moves the runtime under the kubelet.
func RepoFile(base string) string {
	return "# Written by deckhand-agent (the runtime task): containerd.io, signed by the key in\n" +
		"# " + KeyFile + ", which the task pinned by its fingerprint.\n" +
		"[" + ID + "]\nname=containerd.io (Deckhand)\nbaseurl=" + base + "\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=0\n" +
		"gpgkey=file://" + KeyFile + "\nexclude=containerd.io\n"
}

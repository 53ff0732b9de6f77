package containerdrepo

import (
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/hostos"
)

func TestResolve(t *testing.T) {
	rocky := hostos.Parse([]byte("ID=rocky\nVERSION_ID=9.5\n"))
	rhel := hostos.Parse([]byte("ID=rhel\nVERSION_ID=9.4\n"))
	for _, tc := range []struct {
		name          string
		base, key, fp string
		os            hostos.OS
		want          Repo
		wantErr       string
	}{
		{"Docker's, on Rocky", "", "", "", rocky, Repo{"https://download.docker.com/linux/centos/$releasever/$basearch/stable", "https://download.docker.com/linux/centos/gpg", DockerKeyFingerprint}, ""},
		{"Docker's, on RHEL", "", "", "", rhel, Repo{"https://download.docker.com/linux/rhel/$releasever/$basearch/stable", "https://download.docker.com/linux/rhel/gpg", DockerKeyFingerprint}, ""},
		{"a mirror", "http://mirror.example/docker/el9/", "http://mirror.example/docker/gpg", "060a 61c5 1b55 8a7f 742b 77aa c52f eb6b 621e 9f35", rocky,
			Repo{"http://mirror.example/docker/el9", "http://mirror.example/docker/gpg", DockerKeyFingerprint}, ""},
		{"a mirror without its key", "http://mirror.example/docker", "", "", rocky, Repo{}, "spec.runtime.repository.gpgKeyURL is empty"},
		{"a key without a fingerprint", "http://m/d", "http://m/gpg", "", rocky, Repo{}, "spec.runtime.repository.gpgKeyFingerprint"},
		{"a short key ID", "http://m/d", "http://m/gpg", "621E9F35", rocky, Repo{}, "not an OpenPGP key fingerprint"},
		{"a fingerprint only", "", "", DockerKeyFingerprint, rocky, Repo{}, "spec.runtime.repository.baseURL is empty"},
		{"a newline in the base URL", "http://m/d\ngpgcheck=0", "http://m/gpg", DockerKeyFingerprint, rocky, Repo{}, "spec.runtime.repository.baseURL"},
		{"not http", "ftp://m/d", "http://m/gpg", DockerKeyFingerprint, rocky, Repo{}, "spec.runtime.repository.baseURL"},
	} {
		got, err := Resolve("spec.runtime.repository.", tc.base, tc.key, tc.fp, tc.os)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
	for v, ok := range map[string]bool{"": true, "1.7.27": true, "1.7.27-3.1.el9": true, "1.7": false, "1.7.27; rm": false, "latest": false} {
		if err := CheckVersion("spec.runtime.containerdVersion", v); (err == nil) != ok {
			t.Errorf("CheckVersion(%q) = %v", v, err)
		}
	}
	repo := RepoFile("http://mirror.example/el9")
	for _, want := range []string{"[deckhand-containerd]\n", "baseurl=http://mirror.example/el9\n", "gpgcheck=1\n", "gpgkey=file:///etc/pki/rpm-gpg/deckhand-containerd.asc\n", "exclude=containerd.io\n"} {
		if !strings.Contains(repo, want) {
			t.Errorf("the repository file lacks %q:\n%s", want, repo)
		}
	}
}

package kubeimages

import (
	"errors"
	"strings"
	"testing"
)

func TestParseReference(t *testing.T) {
	sha := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		in                      string
		host, repo, tag, digest string
		str                     string
	}{
		{in: "nginx", host: "docker.io", repo: "library/nginx", str: "docker.io/library/nginx"},
		{in: "nginx:1.27", host: "docker.io", repo: "library/nginx", tag: "1.27", str: "docker.io/library/nginx:1.27"},
		{in: "bitnami/redis:7", host: "docker.io", repo: "bitnami/redis", tag: "7", str: "docker.io/bitnami/redis:7"},
		{in: "docker.io/nginx", host: "docker.io", repo: "library/nginx", str: "docker.io/library/nginx"},
		{in: "index.docker.io/library/nginx:latest", host: "docker.io", repo: "library/nginx", tag: "latest", str: "docker.io/library/nginx:latest"},
		{in: "registry.k8s.io/pause:3.10", host: "registry.k8s.io", repo: "pause", tag: "3.10", str: "registry.k8s.io/pause:3.10"},
		{in: "registry.k8s.io/coredns/coredns:v1.12.0", host: "registry.k8s.io", repo: "coredns/coredns", tag: "v1.12.0", str: "registry.k8s.io/coredns/coredns:v1.12.0"},
		{in: "registry.example.com:5000/k8s/etcd:3.5.24-0", host: "registry.example.com:5000", repo: "k8s/etcd", tag: "3.5.24-0", str: "registry.example.com:5000/k8s/etcd:3.5.24-0"},
		{in: "localhost/pause", host: "localhost", repo: "pause", str: "localhost/pause"},
		{in: "localhost:5000/pause:3.10", host: "localhost:5000", repo: "pause", tag: "3.10", str: "localhost:5000/pause:3.10"},
		{in: "[fd00::1]:5000/k8s/pause:3.10", host: "[fd00::1]:5000", repo: "k8s/pause", tag: "3.10", str: "[fd00::1]:5000/k8s/pause:3.10"},
		// Docker's rule: without a '/' the name is a Docker Hub path, even "localhost:5000".
		{in: "localhost:5000", host: "docker.io", repo: "library/localhost", tag: "5000", str: "docker.io/library/localhost:5000"},
		{in: "registry.k8s.io/pause@" + sha, host: "registry.k8s.io", repo: "pause", digest: sha, str: "registry.k8s.io/pause@" + sha},
		{in: "registry.k8s.io/pause:3.10@" + sha, host: "registry.k8s.io", repo: "pause", tag: "3.10", digest: sha, str: "registry.k8s.io/pause:3.10@" + sha},
		{in: "a.io/x__y.z-w---v/p:TAG_1.x-y", host: "a.io", repo: "x__y.z-w---v/p", tag: "TAG_1.x-y", str: "a.io/x__y.z-w---v/p:TAG_1.x-y"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseReference(tc.in)
			if err != nil {
				t.Fatalf("ParseReference: %v", err)
			}
			if r.Host() != tc.host || r.Repository() != tc.repo || r.Tag() != tc.tag || r.Digest() != tc.digest || r.String() != tc.str {
				t.Fatalf("got host=%q repo=%q tag=%q digest=%q str=%q", r.Host(), r.Repository(), r.Tag(), r.Digest(), r.String())
			}
			again, err := ParseReference(r.String())
			if err != nil || again != r {
				t.Fatalf("String() does not round-trip: %q -> %+v, %v", r.String(), again, err)
			}
		})
	}
}

func TestParseReferenceRejects(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "is not an image reference"},
		{"Nginx", "upper-case"},
		{"registry.k8s.io/Pause:3.10", "upper-case"},
		{"Registry.k8s.io/pause", "upper-case"},
		{"registry.k8s.io//pause", "empty path component"},
		{"registry.k8s.io/pause/", "empty path component"},
		{"registry.k8s.io/", "empty path component"},
		{"/pause", "empty path component"},
		{"registry.k8s.io/pause:", "bad tag"},
		{"registry.k8s.io/pause:.x", "bad tag"},
		{"registry.k8s.io/pause:-x", "bad tag"},
		{"registry.k8s.io/pause:a:b", "bad tag"},
		{"registry.k8s.io/pause:" + strings.Repeat("a", 129), "bad tag"},
		{"registry.k8s.io/pause@sha256:abc", "bad digest"},
		{"registry.k8s.io/pause@md5:" + strings.Repeat("a", 32), "bad digest"},
		{"registry.k8s.io/pause@sha256:" + strings.Repeat("A", 64), "bad digest"},
		{"registry.k8s.io/pause@", "bad digest"},
		{"registry.k8s.io:0/pause", "bad port"},
		{"registry.k8s.io:/pause", "empty port"},
		{"[fd00::1/pause", "unclosed IPv6"},
		{"[zz::1]/pause", "bad IPv6"},
		{"reg_istry.io/pause", "bad host name"},
		{"registry.k8s.io/pa--_use", "bad path component"},
		{"registry.k8s.io/-pause", "bad path component"},
		{"a.io/" + strings.Repeat("a", 260), "longer than 255"},
		{"pause 3.10", "bad path component"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseReference(tc.in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not contain %q", err, tc.msg)
			}
		})
	}
}

package kubeimages

import (
	"reflect"
	"strings"
	"testing"
)

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"nginx", "nginx:1.27", "docker.io/nginx", "index.docker.io/library/nginx",
		"registry.k8s.io/pause:3.10", "registry.k8s.io/coredns/coredns:v1.12.0",
		"localhost:5000", "localhost:5000/pause", "[fd00::1]:5000/k8s/etcd:3.5.24-0",
		"registry.k8s.io/pause@sha256:" + strings.Repeat("ab", 32),
		"a.io/x__y.z-w---v/p:TAG_1.x-y", "Nginx", "registry.k8s.io//pause", "a:b:c", "@", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		str := r.String()
		again, err := ParseReference(str)
		if err != nil {
			t.Fatalf("%q was accepted as %q, which is rejected: %v", s, str, err)
		}
		if again != r {
			t.Fatalf("%q -> %q -> %+v, want %+v", s, str, again, r)
		}
		if again.String() != str {
			t.Fatalf("String is not stable: %q then %q", str, again.String())
		}
		if r.Host() == "" || r.Repository() == "" {
			t.Fatalf("%q accepted with an empty host or repository: %+v", s, r)
		}
	})
}

func FuzzParseRegistry(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("registry.example.com:5000/k8s", "https://mirror.example.com", "http://127.0.0.1:5000", "127.0.0.1:5000")
	f.Add("registry.k8s.io", "ftp://x", "", "")
	f.Add("[fd00::1]:5000/k8s", "https://[fd00::2]:443/v2", "", "[fd00::2]:443")
	f.Add("docker.io", "https://a", "https://a", "a")
	f.Add("index.docker.io/k8s", "http://m", "", "")
	f.Fuzz(func(t *testing.T, repo, m1, m2, insecure string) {
		var mirrors, ins []string
		for _, m := range []string{m1, m2} {
			if m != "" {
				mirrors = append(mirrors, m)
			}
		}
		if insecure != "" {
			ins = []string{insecure}
		}
		r, err := ParseRegistry(repo, mirrors, ins)
		if err != nil {
			return
		}
		again, err := ParseRegistry(r.ImageRepository, r.Mirrors, r.Insecure)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("%+v does not re-parse to itself: %+v, %v", r, again, err)
		}
		// Every image of an accepted repository parses and comes from the repository's host.
		want, err := ParseReference(r.ImageRepository + "/x")
		if err != nil {
			t.Fatalf("repository %q accepted but repository/x is not a reference: %v", r.ImageRepository, err)
		}
		images, err := ControlPlaneImages("v1.33.3", r.ImageRepository)
		if err != nil {
			t.Fatalf("repository %q accepted by ParseRegistry but not by ControlPlaneImages: %v", r.ImageRepository, err)
		}
		for _, img := range images {
			ref, err := ParseReference(img)
			if err != nil {
				t.Fatalf("image %q of repository %q is not a reference: %v", img, r.ImageRepository, err)
			}
			if ref.Host() != want.Host() || !strings.HasPrefix(ref.String(), want.Host()+"/") {
				t.Fatalf("image %q is on host %q, not the repository's %q", img, ref.Host(), want.Host())
			}
		}
	})
}

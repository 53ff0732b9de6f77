package kubeimages

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRegistry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		repo     string
		mirrors  []string
		insecure []string
		want     Registry
	}{
		{name: "empty means registry.k8s.io", want: Registry{ImageRepository: "registry.k8s.io"}},
		{name: "host port path", repo: "registry.example.com:5000/k8s", want: Registry{ImageRepository: "registry.example.com:5000/k8s"}},
		{name: "nested path", repo: "registry.aliyuncs.com/google_containers", want: Registry{ImageRepository: "registry.aliyuncs.com/google_containers"}},
		{name: "localhost", repo: "localhost/k8s", want: Registry{ImageRepository: "localhost/k8s"}},
		{name: "ipv4 and port", repo: "10.0.0.5:5000", want: Registry{ImageRepository: "10.0.0.5:5000"}},
		{name: "ipv6", repo: "[fd00::1]:5000/k8s", want: Registry{ImageRepository: "[fd00::1]:5000/k8s"}},
		{
			name:     "mirrors in order and insecure hosts",
			repo:     "registry.k8s.io",
			mirrors:  []string{"https://mirror-b.example.com", "http://127.0.0.1:5000", "https://proxy.example.com/v2/k8s"},
			insecure: []string{"127.0.0.1:5000", "mirror-b.example.com", "127.0.0.1:5000"},
			want: Registry{
				ImageRepository: "registry.k8s.io",
				Mirrors:         []string{"https://mirror-b.example.com", "http://127.0.0.1:5000", "https://proxy.example.com/v2/k8s"},
				Insecure:        []string{"127.0.0.1:5000", "mirror-b.example.com"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRegistry(tc.repo, tc.mirrors, tc.insecure)
			if err != nil {
				t.Fatalf("ParseRegistry: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRegistryHost(t *testing.T) {
	for repo, want := range map[string]string{
		"":                              "registry.k8s.io",
		"registry.example.com:5000/k8s": "registry.example.com:5000",
		"[fd00::1]:5000/a/b":            "[fd00::1]:5000",
	} {
		r, err := ParseRegistry(repo, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Host() != want {
			t.Errorf("Host() of %q = %q, want %q", repo, r.Host(), want)
		}
	}
}

func TestParseRegistryRejects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		repo     string
		mirrors  []string
		insecure []string
		field    string
		msg      string // substring of the message
	}{
		{name: "scheme", repo: "https://registry.example.com/k8s", field: "image_repository", msg: "has a URL scheme"},
		{name: "tag", repo: "registry.example.com/k8s:v1", field: "image_repository", msg: "has a tag"},
		{name: "digest", repo: "registry.example.com/k8s@sha256:" + strings.Repeat("a", 64), field: "image_repository", msg: "has a digest"},
		{name: "upper case path", repo: "registry.example.com/K8s", field: "image_repository", msg: "upper-case"},
		{name: "upper case host", repo: "Registry.example.com/k8s", field: "image_repository", msg: "upper-case"},
		{name: "trailing slash", repo: "registry.example.com/k8s/", field: "image_repository", msg: "empty path component"},
		{name: "double slash", repo: "registry.example.com//k8s", field: "image_repository", msg: "empty path component"},
		{name: "no host", repo: "google_containers", field: "image_repository", msg: "does not start with a registry host"},
		{name: "docker hub style path", repo: "myorg/k8s", field: "image_repository", msg: "would be read as a Docker Hub path"},
		{name: "bad port", repo: "registry.example.com:99999/k8s", field: "image_repository", msg: "bad port"},
		{name: "empty port", repo: "registry.example.com:/k8s", field: "image_repository", msg: "empty port"},
		{name: "space", repo: "registry.example.com/k 8s", field: "image_repository", msg: "bad path component"},
		{name: "too long", repo: "r.io/" + strings.Repeat("a", 200), field: "image_repository", msg: "longer than"},
		{name: "ftp mirror", mirrors: []string{"https://ok.example.com", "ftp://x"}, field: "mirrors[1]", msg: "is not an http(s) URL"},
		{name: "bare host mirror", mirrors: []string{"mirror.example.com"}, field: "mirrors[0]", msg: "is not an http(s) URL"},
		{name: "mirror without host", mirrors: []string{"https://"}, field: "mirrors[0]", msg: "has no host"},
		{name: "mirror with credentials", mirrors: []string{"https://user:pw@mirror.example.com"}, field: "mirrors[0]", msg: "credentials"},
		{name: "mirror with query", mirrors: []string{"https://mirror.example.com/?x=1"}, field: "mirrors[0]", msg: "query"},
		{name: "mirror with quote", mirrors: []string{`https://mirror.example.com/"]`}, field: "mirrors[0]", msg: "quote"},
		{name: "mirror bad port", mirrors: []string{"https://mirror.example.com:0"}, field: "mirrors[0]", msg: "bad port"},
		{name: "duplicate mirror", mirrors: []string{"https://a.example.com", "https://b.example.com", "https://a.example.com"}, field: "mirrors[2]", msg: "repeats mirrors[0]"},
		{name: "insecure with scheme", insecure: []string{"http://127.0.0.1:5000"}, field: "insecure_registries[0]", msg: "has a URL scheme"},
		{name: "insecure with path", insecure: []string{"ok.example.com", "r.example.com/k8s"}, field: "insecure_registries[1]", msg: "has a path"},
		{name: "insecure empty", insecure: []string{""}, field: "insecure_registries[0]", msg: "empty host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRegistry(tc.repo, tc.mirrors, tc.insecure)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an error wrapping ErrInvalid", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, want a FieldError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not start with %q and contain %q", err, tc.field, tc.msg)
			}
		})
	}
}

func TestParseRegistryMessage(t *testing.T) {
	_, err := ParseRegistry("", []string{"https://mirror.example.com", "ftp://x"}, nil)
	const want = `mirrors[1]: "ftp://x" is not an http(s) URL: use https://host[:port]`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestParseRegistryDoesNotAlias(t *testing.T) {
	mirrors := []string{"https://a.example.com"}
	r, err := ParseRegistry("", mirrors, nil)
	if err != nil {
		t.Fatal(err)
	}
	mirrors[0] = "https://changed.example.com"
	if r.Mirrors[0] != "https://a.example.com" {
		t.Fatalf("Registry shares the caller's slice: %v", r.Mirrors)
	}
}

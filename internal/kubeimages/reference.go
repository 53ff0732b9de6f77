package kubeimages

import (
	"regexp"
	"strings"
)

// Docker Hub's names, as Docker normalizes them.
const (
	dockerHubHost       = "docker.io"
	legacyDockerHubHost = "index.docker.io"
	officialPrefix      = "library/"
	maxNameLen          = 255 // host/path, as in distribution/reference
)

var (
	tagRE    = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	digestRE = regexp.MustCompile(`^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// Reference is a parsed, normalized image reference: host/path[:tag][@digest].
// The zero value is not a valid reference. References are comparable with ==.
type Reference struct {
	host, path, tag, digest string
}

// ParseReference parses `[host[:port]/]path[:tag][@digest]` with Docker's defaults: a
// name without a registry host is on docker.io, and a single-component docker.io path is
// under library/ (index.docker.io is written docker.io). The first component is a host
// when it has a dot or a port, is "localhost", or is a bracketed IPv6 address.
//
// No tag is added when there is none: Tag returns "". Errors are [*FieldError]s without a
// field name, wrapping [ErrInvalid]; callers name the field.
func ParseReference(ref string) (Reference, error) {
	if ref == "" {
		return Reference{}, invalid("", ref, "is not an image reference", "write [host[:port]/]path[:tag][@sha256:...]")
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !digestRE.MatchString(digest) {
		return Reference{}, invalid("", ref, "has a bad digest", "write @sha256: and 64 lower-case hex digits")
	}
	var r Reference
	r.digest = digest
	host, rest, hasSlash := strings.Cut(name, "/")
	if hasSlash && looksLikeHost(host) {
		if reason, hint := hostProblem(host); reason != "" {
			return Reference{}, invalid("", ref, reason, hint)
		}
		r.host = host
	} else {
		r.host, rest = dockerHubHost, name
	}
	path, tag, hasTag := strings.Cut(rest, ":")
	if hasTag {
		if !tagRE.MatchString(tag) {
			return Reference{}, invalid("", ref, "has a bad tag", "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
		}
		r.tag = tag
	}
	for _, c := range strings.Split(path, "/") {
		if reason, hint := componentProblem(c); reason != "" {
			return Reference{}, invalid("", ref, reason, hint)
		}
	}
	if r.host == legacyDockerHubHost {
		r.host = dockerHubHost
	}
	if r.host == dockerHubHost && !strings.Contains(path, "/") {
		path = officialPrefix + path
	}
	r.path = path
	if len(r.host)+1+len(r.path) > maxNameLen {
		return Reference{}, invalid("", ref, "is longer than 255 characters before its tag", "use a shorter name")
	}
	return r, nil
}

// Host is the registry host[:port], e.g. "registry.k8s.io" or "docker.io".
func (r Reference) Host() string { return r.host }

// Repository is the path inside the registry, e.g. "coredns/coredns" or "library/nginx".
func (r Reference) Repository() string { return r.path }

// Tag is the tag, or "" when the reference has none.
func (r Reference) Tag() string { return r.tag }

// Digest is "sha256:<hex>" (or sha512), or "" when the reference has none.
func (r Reference) Digest() string { return r.digest }

// Name is host/path without tag or digest.
func (r Reference) Name() string { return r.host + "/" + r.path }

// String is the normalized reference: host/path[:tag][@digest]. ParseReference(r.String())
// returns r.
func (r Reference) String() string {
	s := r.Name()
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}
	return s
}

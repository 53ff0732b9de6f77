package kubeimages

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// DefaultImageRepository is kubeadm's default image repository.
const DefaultImageRepository = "registry.k8s.io"

// maxRepositoryLen leaves room for the longest image name kubeadm appends
// ("/kube-controller-manager") inside Docker's 255-character limit for a full name.
const maxRepositoryLen = 200

// Registry is a cluster's one registry setting, applied alike to the kubeadm configuration,
// the sandbox image, the runtime's hosts.toml mirrors and the image pulls.
type Registry struct {
	// ImageRepository is the prefix every control-plane image is rewritten to:
	// host[:port][/path...], e.g. "registry.k8s.io" or "registry.example.com:5000/k8s".
	ImageRepository string
	// Mirrors are http:// or https:// URLs tried in order before the repository's own host.
	Mirrors []string
	// Insecure lists registry hosts (host[:port]) reached without TLS verification.
	Insecure []string
}

// Host returns the registry host[:port] of the image repository, e.g. "registry.k8s.io":
// the directory name of its hosts.toml.
func (r Registry) Host() string {
	h, _, _ := strings.Cut(r.ImageRepository, "/")
	return h
}

// ParseRegistry validates a registry setting. An empty repo means [DefaultImageRepository].
// Errors are [*FieldError]s naming image_repository, mirrors[i] or insecure_registries[i].
// Duplicate mirrors are rejected (they would be tried twice); duplicate insecure hosts are
// dropped.
func ParseRegistry(repo string, mirrors, insecure []string) (Registry, error) {
	var r Registry
	var err error
	if r.ImageRepository, err = parseRepository("image_repository", repo); err != nil {
		return Registry{}, err
	}
	seen := map[string]int{}
	for i, m := range mirrors {
		field := fmt.Sprintf("mirrors[%d]", i)
		if err := checkMirror(field, m); err != nil {
			return Registry{}, err
		}
		if j, dup := seen[m]; dup {
			return Registry{}, invalid(field, m, fmt.Sprintf("repeats mirrors[%d]", j), "list each mirror once")
		}
		seen[m] = i
		r.Mirrors = append(r.Mirrors, m)
	}
	have := map[string]bool{}
	for i, h := range insecure {
		field := fmt.Sprintf("insecure_registries[%d]", i)
		if err := ValidateHost(field, h); err != nil {
			return Registry{}, err
		}
		if !have[h] {
			have[h] = true
			r.Insecure = append(r.Insecure, h)
		}
	}
	return r, nil
}

// parseRepository validates an image repository prefix; empty means the default.
func parseRepository(field, repo string) (string, error) {
	if repo == "" {
		return DefaultImageRepository, nil
	}
	const hint = "write host[:port][/path], e.g. registry.example.com:5000/k8s"
	if strings.Contains(repo, "://") {
		return "", invalid(field, repo, "has a URL scheme", "an image repository has none; "+hint)
	}
	if strings.ContainsAny(repo, "@") {
		return "", invalid(field, repo, "has a digest", "an image repository is a prefix without tag or digest; "+hint)
	}
	if len(repo) > maxRepositoryLen {
		return "", invalid(field, repo, fmt.Sprintf("is longer than %d characters", maxRepositoryLen), "use a shorter repository")
	}
	host, path, hasPath := strings.Cut(repo, "/")
	if !looksLikeHost(host) {
		return "", invalid(field, repo, fmt.Sprintf("does not start with a registry host (%q has no dot or port and is not localhost, so it would be read as a Docker Hub path)", host),
			"name the registry first, e.g. registry.example.com/"+repo)
	}
	if reason, hint := hostProblem(host); reason != "" {
		return "", invalid(field, repo, "has a bad registry host: "+reason, hint)
	}
	if hasPath {
		for _, c := range strings.Split(path, "/") {
			if reason, hint := componentProblem(c); reason != "" {
				if strings.Contains(c, ":") {
					reason, hint = "has a tag", "an image repository is a prefix without tag or digest; "+hint
				}
				return "", invalid(field, repo, reason, hint)
			}
		}
	}
	return repo, nil
}

// checkMirror validates one mirror URL.
func checkMirror(field, m string) error {
	const hint = "use https://host[:port]"
	if !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
		return invalid(field, m, "is not an http(s) URL", hint)
	}
	if strings.ContainsFunc(m, badURLRune) {
		return invalid(field, m, "has a space, quote, backslash or control character", hint)
	}
	u, err := url.Parse(m)
	if err != nil {
		return invalid(field, m, "is not an http(s) URL", hint)
	}
	if u.Host == "" {
		return invalid(field, m, "has no host", hint)
	}
	if u.User != nil {
		return invalid(field, m, "carries credentials", "put registry credentials in the runtime's auth settings, not in the URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.Contains(m, "#") {
		return invalid(field, m, "has a query or fragment", hint)
	}
	if reason, h := hostProblem(u.Host); reason != "" {
		return invalid(field, m, "has a bad host: "+reason, h)
	}
	return nil
}

func badURLRune(r rune) bool {
	return r <= ' ' || r == 0x7f || r == '"' || r == '\\' || r > 0x7e
}

var labelRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`)

// hostProblem says why h is not a registry host[:port], or returns "" when it is one.
// A host is a lower-case DNS name, an IPv4 address or a bracketed IPv6 address, with an
// optional port 1-65535.
func hostProblem(h string) (reason, hint string) {
	const hint0 = "write host[:port], e.g. registry.example.com:5000"
	switch {
	case h == "":
		return "has an empty host", hint0
	case strings.Contains(h, "://"):
		return "has a URL scheme", "write host[:port] without http:// or https://"
	case strings.Contains(h, "/"):
		return "has a path", hint0
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 {
			return "has an unclosed IPv6 bracket", "write [addr]:port"
		}
		name, port = h[:end+1], h[end+1:]
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return "has text after the IPv6 address", "write [addr]:port"
			}
			port = port[1:]
			if port == "" {
				return "has an empty port", hint0
			}
		}
		a, err := netip.ParseAddr(name[1 : len(name)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "has a bad IPv6 address", "write [addr]:port"
		}
	} else {
		var hasPort bool
		name, port, hasPort = strings.Cut(h, ":")
		if hasPort && port == "" {
			return "has an empty port", hint0
		}
		if name != strings.ToLower(name) {
			return "has upper-case letters in its host", "registry hosts are written in lower case"
		}
		if len(name) > 253 {
			return "has a host longer than 253 characters", hint0
		}
		for _, l := range strings.Split(name, ".") {
			if len(l) > 63 || !labelRE.MatchString(l) {
				return "has a bad host name", hint0
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' || strings.ContainsAny(port, "+-") {
			return "has a bad port", "use a port from 1 to 65535"
		}
	}
	return "", ""
}

// looksLikeHost is Docker's rule for whether the first component of a name is a registry
// host rather than part of a Docker Hub path.
func looksLikeHost(c string) bool {
	return strings.ContainsAny(c, ".:[") || c == "localhost"
}

var componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// componentProblem says why c is not a repository path component, or returns "".
func componentProblem(c string) (reason, hint string) {
	const hint0 = "path components are lower-case letters and digits, separated by '.', '_', '__' or dashes"
	switch {
	case c == "":
		return "has an empty path component", "remove the doubled or trailing '/'"
	case c != strings.ToLower(c):
		return "has upper-case letters in its path", "image repositories are written in lower case"
	case !componentRE.MatchString(c):
		return "has a bad path component " + strconv.Quote(c), hint0
	}
	return "", ""
}

// ValidateHost checks that h is a registry host[:port] (a lower-case DNS name, an IPv4
// address or a bracketed IPv6 address, with an optional port), naming field in the error.
func ValidateHost(field, h string) error {
	if reason, hint := hostProblem(h); reason != "" {
		return invalid(field, h, reason, hint)
	}
	return nil
}

// ValidateMirror checks that m is an http:// or https:// mirror URL with a host and no
// credentials, query or fragment, naming field in the error.
func ValidateMirror(field, m string) error {
	return checkMirror(field, m)
}

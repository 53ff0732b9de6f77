package safetext

import (
	"net/url"
	"path"
	"strings"
	"unicode"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

// MaxLen bounds a URL or path.
const MaxLen = 2048

func invalid(field, value, reason, hint string) error {
	return &kubeimages.FieldError{Field: field, Value: value, Reason: reason, Hint: hint}
}

// HasControl reports whether s holds a control character (including newline, tab and DEL)
// or invalid UTF-8.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar })
}

// HTTPURL checks an http(s) URL written into a file or fetched by the agent: a host, no
// user information, no whitespace or control characters, no fragment.
func HTTPURL(field, s string) error {
	const hint = "give an http(s) URL such as https://pkgs.k8s.io/core:/stable:/v1.33/deb"
	if len(s) > MaxLen {
		return invalid(field, s[:64]+"...", "is longer than 2048 characters", hint)
	}
	if HasControl(s) || strings.ContainsFunc(s, unicode.IsSpace) {
		return invalid(field, s, "contains whitespace or a control character", "a URL has none; "+hint)
	}
	u, err := url.Parse(s)
	if err != nil {
		return invalid(field, s, "is not a URL", hint)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid(field, s, "is not an http(s) URL", hint)
	}
	if u.Host == "" || u.Opaque != "" {
		return invalid(field, s, "has no host", hint)
	}
	if u.User != nil {
		return invalid(field, s, "has user information", "do not put credentials in the URL; "+hint)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return invalid(field, s, "has a fragment (#)", hint)
	}
	return nil
}

// AbsPath checks an absolute, clean path on the node with no control characters.
func AbsPath(field, s string) error {
	const hint = "give an absolute path on the node, such as /var/tmp/images.tar"
	switch {
	case len(s) > MaxLen:
		return invalid(field, s[:64]+"...", "is longer than 2048 characters", hint)
	case HasControl(s):
		return invalid(field, s, "contains a control character", hint)
	case !path.IsAbs(s):
		return invalid(field, s, "is not an absolute path", hint)
	case path.Clean(s) != s:
		return invalid(field, s, "is not a clean path (no //, . or .. parts, no trailing /)", "write it as "+path.Clean(s))
	}
	return nil
}

// Location checks an artifact location: an http(s) URL or an absolute path on the node.
func Location(field, s string) error {
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return HTTPURL(field, s)
	}
	if strings.HasPrefix(s, "/") {
		return AbsPath(field, s)
	}
	return invalid(field, s, "is neither an http(s) URL nor an absolute path", "give a release URL or an absolute path on the node")
}

// KubernetesName checks a Kubernetes object name as kubectl takes it in argv (a Node's
// name): an RFC 1123 subdomain, so it never starts with '-' and is never read as a flag.
func KubernetesName(field, s string) error {
	const hint = "give the node's name as kubectl get nodes shows it (lower-case letters, digits, '-' and '.')"
	if s == "" {
		return invalid(field, s, "is required", hint)
	}
	if len(s) > 253 {
		return invalid(field, s[:64]+"...", "is longer than 253 characters", hint)
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.ContainsFunc(l, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
		}) {
			return invalid(field, s, "is not a Kubernetes node name (an RFC 1123 subdomain)", hint)
		}
	}
	return nil
}

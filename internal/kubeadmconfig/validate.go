package kubeadmconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

// secretValue stands in for a rejected secret in an error, which is logged and returned
// to clients.
const secretValue = "(secret, not shown)"

func invalid(field, value, reason, hint string) *kubeimages.FieldError {
	return &kubeimages.FieldError{Field: field, Value: value, Reason: reason, Hint: hint}
}

// prefixField returns err with prefix added to the field of its FieldError, so an error of
// a nested message names the full path (registry.mirrors[0]).
func prefixField(prefix string, err error) error {
	var fe *kubeimages.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	c := *fe
	c.Field = prefix + c.Field
	return &c
}

var (
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// Kubernetes' qualified-name part and label value: alphanumerics with '-', '_', '.'
	// inside (k8s.io/apimachinery/pkg/util/validation).
	nameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// labelProblem says why s is not an RFC 1123 DNS label as Kubernetes checks it (lower
// case, at most 63 characters), or returns "".
func labelProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > 63:
		return "is longer than 63 characters"
	case s != strings.ToLower(s) && dnsLabelRE.MatchString(strings.ToLower(s)):
		return "has upper-case letters"
	case !dnsLabelRE.MatchString(s):
		return "is not an RFC 1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
	}
	return ""
}

// subdomainProblem says why s is not an RFC 1123 DNS subdomain (dot-separated labels, at
// most 253 characters), or returns "".
func subdomainProblem(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > 253 {
		return "is longer than 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if r := labelProblem(l); r != "" {
			if l == "" {
				return "has an empty DNS label"
			}
			return fmt.Sprintf("has a bad DNS label %q: %s", l, r)
		}
	}
	return ""
}

// qualifiedNameProblem says why k is not a Kubernetes qualified name ([prefix/]name, the
// form of label and taint keys), or returns "".
func qualifiedNameProblem(k string) string {
	name := k
	if prefix, rest, ok := strings.Cut(k, "/"); ok {
		if prefix == "" {
			return "has an empty prefix before '/'"
		}
		if r := subdomainProblem(prefix); r != "" {
			return "has a prefix that " + r
		}
		name = rest
	}
	switch {
	case name == "":
		return "has an empty name"
	case len(name) > 63:
		return "has a name longer than 63 characters"
	case !nameRE.MatchString(name):
		return "has a name that is not alphanumerics with '-', '_' or '.' inside"
	}
	return ""
}

// labelValueProblem says why v is not a Kubernetes label value (empty, or at most 63
// alphanumerics with '-', '_' or '.' inside), or returns "".
func labelValueProblem(v string) string {
	switch {
	case v == "":
		return ""
	case len(v) > 63:
		return "is longer than 63 characters"
	case !nameRE.MatchString(v):
		return "is not alphanumerics with '-', '_' or '.' inside"
	}
	return ""
}

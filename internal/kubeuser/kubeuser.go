// Package kubeuser holds what the API, the agent and deckctl agree on about the Kubernetes
// users Deckhand issues certificates for (deckctl kubeconfig): which names are allowed, how
// long a certificate may live, the group that makes a user cluster-admin, and the name of
// the binding that makes one a viewer.
package kubeuser

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Roles a kubeconfig's user can have.
const (
	RoleAdmin = "admin"
	RoleView  = "view"
)

// AdminGroup is the group kubeadm (1.29 and later) binds to the ClusterRole cluster-admin
// with the ClusterRoleBinding kubeadm:cluster-admins; admin.conf's user is in it too.
const AdminGroup = "kubeadm:cluster-admins"

// Bounds of a user certificate's lifetime.
const (
	MinTTL     = 10 * time.Minute
	MaxTTL     = 8760 * time.Hour
	DefaultTTL = 24 * time.Hour
)

// MaxName bounds a user name (a ClusterRoleBinding name has room for the prefix and it).
const MaxName = 128

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.@:_-]*[a-z0-9])?$`)

// CheckName says what is wrong with a user name, nil when it is fine: 1-MaxName lower-case
// letters, digits and . @ : _ -, starting and ending with a letter or digit, and not a
// "system:" name, which Kubernetes keeps for its own users.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("is required: the Kubernetes user name the certificate is for")
	case len(name) > MaxName || !nameRE.MatchString(name):
		return fmt.Errorf("%q is not a user name: use 1-%d lower-case letters, digits and . @ : _ -, starting and ending with a letter or digit", name, MaxName)
	case strings.HasPrefix(name, "system:"):
		return fmt.Errorf("%q starts with system:, which Kubernetes keeps for its own users: choose another name", name)
	}
	return nil
}

// CheckTTL says what is wrong with a certificate lifetime, nil when it is fine.
func CheckTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return fmt.Errorf("%v is out of range: give %v to %v (for example 24h)", ttl, MinTTL, MaxTTL)
	}
	return nil
}

// Groups is the certificate Organization for a role; nil for an unknown role.
func Groups(role string) []string {
	switch role {
	case RoleAdmin:
		return []string{AdminGroup}
	case RoleView:
		return []string{}
	}
	return nil
}

// ViewBindingName is the ClusterRoleBinding that binds the ClusterRole view to user.
func ViewBindingName(user string) string { return "deckhand:view:" + user }

// NameFrom turns any string (a Deckhand credential's name) into a valid user name part:
// lower case, other characters as '-', trimmed to letters or digits at both ends.
func NameFrom(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(".@_-", r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), ".@_-")
}

// MaxCSRBytes bounds a PEM certificate request (an RSA 8192 one is under 4 KiB).
const MaxCSRBytes = 16 << 10

// CheckCSR parses a PEM certificate request and checks it: its signature, that its subject
// is exactly CN=name and O=groups (in any order), and that its key is ECDSA P-256/P-384 or
// RSA of 2048 bits or more.
func CheckCSR(csrPEM []byte, name string, groups []string) (*x509.CertificateRequest, error) {
	if len(csrPEM) > MaxCSRBytes {
		return nil, fmt.Errorf("is %d bytes; a certificate request is at most %d", len(csrPEM), MaxCSRBytes)
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("has a bad signature: %v", err)
	}
	if csr.Subject.CommonName != name {
		return nil, fmt.Errorf("asks for user %q, not %q", csr.Subject.CommonName, name)
	}
	if got, want := sorted(csr.Subject.Organization), sorted(groups); !slices.Equal(got, want) {
		return nil, fmt.Errorf("asks for groups %q, not %q", got, want)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("has an ECDSA key that is not on P-256 or P-384")
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 {
			return nil, fmt.Errorf("has an RSA key of %d bits, which is too weak: use 2048 bits or more", n)
		}
	default:
		return nil, fmt.Errorf("has a %T key: use ECDSA P-256/P-384 or RSA 2048+", csr.PublicKey)
	}
	return csr, nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

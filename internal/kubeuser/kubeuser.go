// Package kubeuser holds what the API, the agent and deckctl agree on about the Kubernetes
// users Deckhand issues certificates for (deckctl kubeconfig): which names are allowed, how
// long a certificate may live, the group that makes a user cluster-admin, and the name of
// the binding that makes one a viewer.
package kubeuser

import (
	"errors"
	"fmt"
	"regexp"
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

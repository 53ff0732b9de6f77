package clientconfig

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/deckhandhq/deckhand/internal/pki"
)

// Limits of a user credential (deckctl credentials create).
const (
	// MinCredentialTTL is the shortest validity of a user credential.
	MinCredentialTTL = time.Minute
	// MaxCredentialTTL is the longest: a year, as admin.conf.
	MaxCredentialTTL = pki.ClientValidity
)

// CredentialRoles are the roles a user credential may carry.
var CredentialRoles = []string{pki.RoleViewer, pki.RoleOperator, pki.RoleAdmin}

var credentialNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.@]{0,61}[a-z0-9])?$`)

// FieldError names the request field (and deckctl flag, --field) that is wrong.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// CheckCredential validates a credential request; deckctl runs it before calling, the
// controller again on the request.
func CheckCredential(name, role string, ttl time.Duration) error {
	if !credentialNameRE.MatchString(name) {
		return &FieldError{"name", fmt.Sprintf("%q must be 1 to 63 lower-case letters, digits, '-', '.' or '@', starting and ending with a letter or digit (for example alice or ci-deploy)", name)}
	}
	if !slices.Contains(CredentialRoles, role) {
		return &FieldError{"role", fmt.Sprintf("%q is not a user role: use viewer (read only), operator (runs tasks and workflows) or admin (also manages nodes, members and credentials)", role)}
	}
	if ttl < MinCredentialTTL || ttl > MaxCredentialTTL {
		return &FieldError{"ttl", fmt.Sprintf("%v is out of range: use between %v and %v (for example 720h for 30 days)", ttl, MinCredentialTTL, MaxCredentialTTL)}
	}
	return nil
}

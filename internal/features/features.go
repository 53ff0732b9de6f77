// Package features names what an agent's build reads beyond the task API an agent of the
// release before it reads. An agent lists its features in its hello (Hello.features), the
// controller keeps them on the node's record, and the workflow engine sends a node only
// what its agent reads: an agent may run one minor version behind the controllers.
package features

import (
	"fmt"
	"slices"
)

// The features. A controller keeps sending the older form to an agent that does not list
// one, for as long as the supported skew includes a release without it.
const (
	// PackedRoutes: the agent reads NetworkSpec.packed_routes.
	PackedRoutes = "network.packed-routes"
	// RoutesFromRecord: the agent refuses a NetworkSpec whose routes_from_record is still
	// set, so the engine may store a peer's routes task without its list for the sending
	// replica to fill. Both releases refuse such a task left unfilled (by a replica of the
	// release before, which sends the record as it is): this one by the flag, the one
	// before by the unfilled byte in packed_routes. The feature keeps the stored form from
	// an agent without it, so a rolling upgrade's older agents get their full list rather
	// than a refused update.
	RoutesFromRecord = "network.routes-from-record"
)

// Agent lists every feature this build's agent has (a new list each call).
func Agent() []string { return []string{PackedRoutes, RoutesFromRecord} }

// Limits of a hello's list (the list comes from outside: it is bounded like the rest).
const (
	MaxFeatures    = 32
	MaxFeatureName = 64
)

// Check says whether list is a feature list an agent may send: at most MaxFeatures names
// of 1 to MaxFeatureName bytes of lower-case letters, digits, '.' and '-', each once. A
// name this controller does not know is kept (it reads nothing into it).
func Check(list []string) error {
	if len(list) > MaxFeatures {
		return fmt.Errorf("%d features, at most %d", len(list), MaxFeatures)
	}
	for i, f := range list {
		if len(f) == 0 || len(f) > MaxFeatureName {
			return fmt.Errorf("feature %d: %d bytes, give 1 to %d", i, len(f), MaxFeatureName)
		}
		for _, c := range []byte(f) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
				return fmt.Errorf("feature %d (%q): only lower-case letters, digits, '.' and '-'", i, f)
			}
		}
		if slices.Contains(list[:i], f) {
			return fmt.Errorf("feature %q is listed twice", f)
		}
	}
	return nil
}

// Has says whether list holds feature f.
func Has(list []string, f string) bool { return slices.Contains(list, f) }

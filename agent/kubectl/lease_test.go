package kubectl_test

import (
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/kubectl"
)

func TestLeaseHeld(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 20, 0, 0, time.UTC)
	lease := func(holder, renew string) []byte {
		return []byte(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"kube-controller-manager","namespace":"kube-system"},` +
			`"spec":{"holderIdentity":"` + holder + `","leaseDurationSeconds":15,"renewTime":"` + renew + `"}}`)
	}
	for _, tc := range []struct {
		name string
		out  []byte
		held bool
		why  string
	}{
		{"renewed 2 s ago", lease("node-1_abc", "2026-12-01T06:19:58.123456Z"), true, ""},
		{"renewed 20 s ago", lease("node-4_def", "2026-12-01T06:19:40.000000Z"), false, "node-4_def last renewed it 20s ago, longer than its 15s"},
		{"no holder", lease("", "2026-12-01T06:19:58.000000Z"), false, "no holder"},
		{"bad time", lease("node-1_abc", "yesterday"), false, "does not parse"},
		{"not JSON", []byte("Error from server"), false, "not a Lease"},
	} {
		held, why := kubectl.LeaseHeld(tc.out, now)
		if held != tc.held || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %v %q, want %v %q", tc.name, held, why, tc.held, tc.why)
		}
	}
}

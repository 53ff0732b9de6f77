package sessions

import (
	"maps"
	"slices"
	"testing"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// After its watch ended, a replica listed the node records again but kept only the
// revision: a deletion or re-enrollment in the skipped revisions left the session open.
func TestReconcileEndsTheSessionsTheRecordsNoLongerAccept(t *testing.T) {
	rec := func(serial, previous string) *apiv1.Node {
		return &apiv1.Node{CertificateSerial: serial, PreviousCertificateSerial: previous}
	}
	cases := []struct {
		name    string
		open    map[string]string
		budgets []string
		records map[string]*apiv1.Node
		drop    map[string]string
		forget  []string
	}{
		{"all current", map[string]string{"a": "1", "b": "2"}, []string{"a", "b"},
			map[string]*apiv1.Node{"a": rec("1", ""), "b": rec("2", "")}, map[string]string{}, nil},
		{"deleted", map[string]string{"a": "1", "b": "2"}, []string{"a", "b"},
			map[string]*apiv1.Node{"b": rec("2", "")}, map[string]string{"a": StaleDeleted}, []string{"a"}},
		{"enrolled again", map[string]string{"a": "1"}, []string{"a"},
			map[string]*apiv1.Node{"a": rec("9", "")}, map[string]string{"a": StaleReenrolled}, nil},
		{"renewed, the new certificate not used yet", map[string]string{"a": "1"}, nil,
			map[string]*apiv1.Node{"a": rec("2", "1")}, map[string]string{}, nil},
		{"renewed and reconnected", map[string]string{"a": "2"}, nil,
			map[string]*apiv1.Node{"a": rec("2", "")}, map[string]string{}, nil},
		{"unreadable record left alone", map[string]string{"a": "1"}, []string{"a"},
			map[string]*apiv1.Node{"a": nil}, map[string]string{}, nil},
		{"budgets of a deleted node without a session here", nil, []string{"gone", "b"},
			map[string]*apiv1.Node{"b": rec("2", "")}, map[string]string{}, []string{"gone"}},
		{"no records at all", map[string]string{"a": "1"}, []string{"a"},
			map[string]*apiv1.Node{}, map[string]string{"a": StaleDeleted}, []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			drop, forget := Reconcile(c.open, c.budgets, c.records)
			if !maps.Equal(drop, c.drop) || !slices.Equal(forget, c.forget) {
				t.Fatalf("Reconcile = %v, %v; want %v, %v", drop, forget, c.drop, c.forget)
			}
		})
	}
}

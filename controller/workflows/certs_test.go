package workflows

import (
	"slices"
	"strings"
	"testing"
)

// The renewal goes through every control plane, or those asked for, in the cluster
// record's order; anything else is refused naming the field.
func TestDecideCertsRenew(t *testing.T) {
	cps := []string{"cp-1", "cp-2", "cp-3"}
	for _, c := range []struct {
		name       string
		cps, asked []string
		want       []string
		err        string
	}{
		{"every control plane", cps, nil, cps, ""},
		{"the record's order", cps, []string{"cp-3", "cp-1"}, []string{"cp-1", "cp-3"}, ""},
		{"one", cps, []string{"cp-2"}, []string{"cp-2"}, ""},
		{"a worker", cps, []string{"cp-1", "w-1"}, nil, `certs_renew.nodes[1]: "w-1" is not a control plane of the cluster (its control planes: cp-1, cp-2, cp-3)`},
		{"twice", cps, []string{"cp-1", "cp-1"}, nil, `certs_renew.nodes[1]: "cp-1" is given twice`},
		{"no control plane", nil, nil, nil, "records no control plane"},
	} {
		got, err := decideCertsRenew(c.cps, c.asked)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
}

package features

import (
	"strings"
	"testing"
)

// The agent's own list is one a controller accepts, and Check names what is wrong in others.
func TestCheck(t *testing.T) {
	if err := Check(Agent()); err != nil {
		t.Fatalf("this build's agent sends a list its controller refuses: %v", err)
	}
	long := strings.Repeat("a", MaxFeatureName+1)
	for _, c := range []struct {
		list []string
		want string // "" for accepted
	}{
		{nil, ""},
		{[]string{"network.packed-routes", "x-1.y"}, ""},
		{make([]string, MaxFeatures+1), "33 features"},
		{[]string{""}, "feature 0: 0 bytes"},
		{[]string{"ok", long}, "feature 1: 65 bytes"},
		{[]string{"Network"}, `feature 0 ("Network")`},
		{[]string{"a b"}, `feature 0 ("a b")`},
		{[]string{"a", "a"}, `feature "a" is listed twice`},
	} {
		err := Check(c.list)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Check(%q) = %v, want %q", c.list, err, c.want)
		}
	}
}

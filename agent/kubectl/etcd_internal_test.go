package kubectl

import (
	"fmt"
	"testing"
)

func TestNamedMembers(t *testing.T) {
	ms := []EtcdMember{
		{ID: 1, Name: "node-1", PeerURLs: []string{"https://10.250.1.21:2380"}},
		{ID: 2, Name: "node-2", PeerURLs: []string{"https://10.250.1.22:2380"}},
		{ID: 3, PeerURLs: []string{"https://10.250.1.24:2380"}, Learner: true}, // node-4's, never started
		{ID: 4, PeerURLs: []string{"https://[fd00::5]:2380"}, Learner: true},
	}
	for _, c := range []struct {
		name, address string
		want          string
	}{
		{"node-2", "10.250.1.22", "[2]"},
		{"node-4", "10.250.1.24", "[3]"},
		{"node-4", "", "[]"},
		{"node-5", "fd00::5", "[4]"},
		{"node-9", "10.250.1.21", "[]"}, // a started member on the address is another node's
		{"", "", "[]"},
	} {
		var ids []uint64
		for _, m := range named(ms, c.name, c.address) {
			ids = append(ids, m.ID)
		}
		if got := fmt.Sprint(ids); got != c.want {
			t.Errorf("named(%s, %s) = %s, want %s", c.name, c.address, got, c.want)
		}
	}
}

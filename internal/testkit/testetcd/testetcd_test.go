package testetcd

import (
	"fmt"
	"testing"
	"time"
)

func TestThreeMembersSurviveKillAndRestart(t *testing.T) {
	start := time.Now()
	c := Start(t, Options{Members: 3})
	t.Logf("3 members healthy in %v, etcd %s", time.Since(start), c.Version())
	if c.Size() != 3 || len(c.Endpoints()) != 3 {
		t.Fatalf("size %d, endpoints %v", c.Size(), c.Endpoints())
	}
	l := c.Leader()
	c.Kill(l)
	if c.Running(l) {
		t.Fatalf("member %d still running after Kill", l)
	}
	// The survivors elect a new leader among themselves.
	if nl := c.Leader(); nl == l {
		t.Fatalf("killed member %d still reported as leader", l)
	}
	c.Restart(l)
	if !c.Running(l) {
		t.Fatalf("member %d not running after Restart", l)
	}
}

func TestTLSClusterServesOnlyTLS(t *testing.T) {
	c := Start(t, Options{TLS: true})
	if c.ClientTLS() == nil {
		t.Fatal("no client TLS config for a TLS cluster")
	}
	if got := c.Endpoint(0); got[:8] != "https://" {
		t.Fatalf("endpoint %s is not https", got)
	}
}

// A partitioned member loses the leadership and, healed, follows again; its clients keep
// reaching it.
func TestPartitionCutsAMemberOffItsPeers(t *testing.T) {
	c := Start(t, Options{Members: 3, PeerProxy: true})
	l := c.Leader()
	c.Partition(l, true)
	WaitFor(t, 15*time.Second, func() error {
		for i := range c.Size() {
			if i == l {
				continue
			}
			st, err := c.status(c.members[i])
			if err != nil {
				return err
			}
			if st.Leader == "" || st.Leader == "0" || st.Leader == c.mustID(t, l) {
				return fmt.Errorf("member %d still follows %s", i, st.Leader)
			}
		}
		return nil
	})
	if _, err := c.status(c.members[l]); err != nil {
		t.Fatalf("the partitioned member no longer answers its clients: %v", err)
	}
	c.Partition(l, false)
	WaitFor(t, 15*time.Second, func() error { return c.waitHealthy(l, time.Now()) })
}

func (c *Cluster) mustID(t *testing.T, i int) string {
	st, err := c.status(c.members[i])
	if err != nil {
		t.Fatal(err)
	}
	return st.Header.MemberID
}

package testetcd

import (
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

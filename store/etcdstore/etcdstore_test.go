package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
	"github.com/deckhandhq/deckhand/internal/testkit/testnet"
	"github.com/deckhandhq/deckhand/store"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func put(ctx context.Context, s store.Store, key, val string) (int64, error) {
	return s.Txn(ctx, store.Txn{Then: []store.Op{store.Put(key, []byte(val))}})
}

// Killing one of three members while 8 writers write through a client that knows every
// member loses no acknowledged write: the survivors hold all of them, writes go on through
// them, and the killed member catches up once restarted.
func TestKillOneOfThreeMembersDuringWrites(t *testing.T) {
	for _, victim := range []string{"leader", "follower"} {
		t.Run(victim, func(t *testing.T) {
			ec := testetcd.Start(t, testetcd.Options{Members: 3})
			w := open(t, testConfig("writer", ec.Endpoints()))
			ctx := ctxT(t, 60*time.Second)

			var mu sync.Mutex
			acked := map[string]string{}
			var failed atomic.Int64
			wctx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for wr := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; wctx.Err() == nil; i++ {
						k, v := fmt.Sprintf("/kill/%d/%d", wr, i), fmt.Sprintf("v%d-%d", wr, i)
						_, err := put(wctx, w, k, v)
						switch {
						case err == nil:
							mu.Lock()
							acked[k] = v
							mu.Unlock()
						case wctx.Err() != nil:
							return
						case errors.Is(err, store.ErrNoLeader):
							failed.Add(1) // in flight on the killed member, or during the election
						default:
							t.Errorf("write %s: %v (want success or ErrNoLeader)", k, err)
							return
						}
					}
				}()
			}
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(acked)
			}
			testetcd.WaitFor(t, 20*time.Second, func() error {
				if n := count(); n < 200 {
					return fmt.Errorf("%d writes acknowledged", n)
				}
				return nil
			})
			idx := ec.Leader()
			if victim == "follower" {
				idx = (idx + 1) % 3
			}
			ec.Kill(idx)
			atKill := count()
			killedAt := time.Now()
			// Writes go on through the two survivors.
			testetcd.WaitFor(t, 30*time.Second, func() error {
				if n := count(); n < atKill+200 {
					return fmt.Errorf("%d writes acknowledged since member %d was killed", n-atKill, idx)
				}
				return nil
			})
			recovered := time.Since(killedAt)
			stop()
			wg.Wait()
			t.Logf("killed the %s (member %d) after %d writes; 200 more within %v; %d writes failed in flight; %d acknowledged in all",
				victim, idx, atKill, recovered.Round(time.Millisecond), failed.Load(), len(acked))

			check := func(s *Store, opts ...store.ReadOption) error {
				kvs, _, err := s.List(ctx, "/kill/", opts...)
				if err != nil {
					return err
				}
				got := make(map[string]string, len(kvs))
				for _, kv := range kvs {
					got[kv.Key] = string(kv.Value)
				}
				for k, v := range acked {
					if got[k] != v {
						return fmt.Errorf("acknowledged write %s=%s missing (got %q)", k, v, got[k])
					}
				}
				return nil
			}
			for j := range 3 {
				if j == idx {
					continue
				}
				if err := check(open(t, testConfig(fmt.Sprintf("reader-%d", j), []string{ec.Endpoint(j)}))); err != nil {
					t.Fatalf("read through surviving member %d: %v", j, err)
				}
			}
			ec.Restart(idx)
			back := open(t, testConfig("reader-back", []string{ec.Endpoint(idx)}))
			testetcd.WaitFor(t, 20*time.Second, func() error { return check(back, store.Stale()) })
			if err := check(back); err != nil {
				t.Fatalf("linearizable read through the restarted member %d: %v", idx, err)
			}
		})
	}
}

// campaignInBackground campaigns and delivers the leadership when won.
func campaignInBackground(t *testing.T, s *Store) <-chan store.Leadership {
	ch := make(chan store.Leadership, 1)
	ctx := ctxT(t, 60*time.Second)
	go func() {
		l, err := s.Campaign(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("campaign: %v", err)
			}
			return
		}
		ch <- l
	}()
	return ch
}

func waitDone(t *testing.T, what string, ctx context.Context, d time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(d):
		t.Fatalf("%s: leadership context still live after %v", what, d)
	}
}

// A leader whose session is revoked or expires is deposed: its context ends, the next
// campaign wins, and every write fenced on the old leadership fails with ErrFenced, through
// its own store and through the new leader's.
func TestDeposedLeaderWritesAreFenced(t *testing.T) {
	t.Run("revoked", func(t *testing.T) {
		ec := testetcd.Start(t, testetcd.Options{Members: 3})
		a := open(t, testConfig("a", []string{ec.Endpoint(0)}))
		b := open(t, testConfig("b", []string{ec.Endpoint(1)}))
		ctx := ctxT(t, 60*time.Second)
		la, err := a.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Txn(ctx, store.Txn{If: []store.Compare{la.Fence()}, Then: []store.Op{store.Put("/owner", []byte("a"))}}); err != nil {
			t.Fatalf("fenced write as leader: %v", err)
		}
		won := campaignInBackground(t, b)
		select {
		case <-won:
			t.Fatal("b won while a leads")
		case <-time.After(300 * time.Millisecond):
		}
		// An operator (or etcd's lease expiry) revokes a's session behind its back.
		admin, err := clientv3.New(clientv3.Config{Endpoints: []string{ec.Endpoint(2)}, DialTimeout: 5 * time.Second, Logger: newZapLogger(testLogger())})
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if _, err := admin.Revoke(ctx, la.(*leadership).sess.Lease()); err != nil {
			t.Fatalf("revoke a's lease: %v", err)
		}
		waitDone(t, "a after its lease was revoked", la.Context(), 10*time.Second)
		var lb store.Leadership
		select {
		case lb = <-won:
		case <-time.After(10 * time.Second):
			t.Fatal("b did not win after a's lease was revoked")
		}
		assertFenced(t, ctx, la, lb, a, b)
	})

	t.Run("expired", func(t *testing.T) {
		ec := testetcd.Start(t, testetcd.Options{Members: 1})
		netw := testnet.New()
		cfgA := testConfig("a", ec.Endpoints())
		cfgA.Dial = netw.Dialer("a")
		cfgA.RequestTimeout = 20 * time.Second // covers gRPC's reconnect backoff after the heal
		a := open(t, cfgA)
		b := open(t, testConfig("b", ec.Endpoints()))
		ctx := ctxT(t, 60*time.Second)
		la, err := a.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		won := campaignInBackground(t, b)
		// a is cut off from etcd: its keepalives stop, etcd expires its lease after the TTL,
		// and a's client gives the session up on its side too.
		cut := time.Now()
		netw.Isolate("a", true)
		var lb store.Leadership
		select {
		case lb = <-won:
		case <-time.After(15 * time.Second):
			t.Fatal("b did not win within 15s of a being cut off")
		}
		t.Logf("b leads %v after a was cut off (session TTL %v)", time.Since(cut).Round(time.Millisecond), cfgA.SessionTTL)
		waitDone(t, "a cut off from etcd", la.Context(), 10*time.Second)
		t.Logf("a's leadership context ended %v after it was cut off", time.Since(cut).Round(time.Millisecond))
		netw.Isolate("a", false)
		assertFenced(t, ctx, la, lb, a, b)
	})
}

func assertFenced(t *testing.T, ctx context.Context, old, next store.Leadership, stores ...*Store) {
	t.Helper()
	for _, s := range stores {
		_, err := s.Txn(ctx, store.Txn{If: []store.Compare{old.Fence()}, Then: []store.Op{store.Put("/owner", []byte("old"))}})
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("deposed leader's write through %s: got %v, want ErrFenced", s.cfg.ID, err)
		}
		// A plain conflict next to a failed fence still reports the fence.
		_, err = s.Txn(ctx, store.Txn{If: []store.Compare{store.ValueIs("/owner", []byte("nobody")), old.Fence()}, Then: []store.Op{store.Put("/owner", []byte("old"))}})
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("deposed leader's write with a failing compare through %s: got %v, want ErrFenced", s.cfg.ID, err)
		}
	}
	s := stores[len(stores)-1]
	if _, err := s.Txn(ctx, store.Txn{If: []store.Compare{next.Fence()}, Then: []store.Op{store.Put("/owner", []byte("new"))}}); err != nil {
		t.Fatalf("new leader's fenced write: %v", err)
	}
	// A conflict that is not a fence is ErrConflict, not ErrFenced.
	_, err := s.Txn(ctx, store.Txn{If: []store.Compare{next.Fence(), store.ValueIs("/owner", []byte("old"))}, Then: []store.Op{store.Put("/owner", []byte("x"))}})
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrFenced) {
		t.Fatalf("new leader's write with a stale compare: got %v, want ErrConflict only", err)
	}
	kv, _, err := s.Get(ctx, "/owner")
	if err != nil || string(kv.Value) != "new" {
		t.Fatalf("/owner = %v, %v; want new", kv, err)
	}
}

// Leader reports the campaign's ID and address, and nothing before a campaign.
func TestLeaderInfo(t *testing.T) {
	ec := testetcd.Start(t, testetcd.Options{})
	a := open(t, testConfig("alpha", ec.Endpoints()))
	cfgB := testConfig("beta", ec.Endpoints())
	cfgB.Address = "10.0.0.12:7400"
	b := open(t, cfgB)
	ctx := ctxT(t, 30*time.Second)
	if _, err := a.Leader(ctx); !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("leader before any campaign: got %v, want ErrNoLeader", err)
	}
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	won := campaignInBackground(t, b)
	for _, s := range []*Store{a, b} {
		if li, err := s.Leader(ctx); err != nil || li != (store.LeaderInfo{ID: "alpha", Address: "127.0.0.1:7400"}) {
			t.Fatalf("leader seen by %s: %+v, %v", s.cfg.ID, li, err)
		}
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, "alpha after resigning", la.Context(), 5*time.Second)
	select {
	case lb := <-won:
		defer lb.Resign(ctx)
	case <-time.After(10 * time.Second):
		t.Fatal("beta did not win after alpha resigned")
	}
	if li, err := a.Leader(ctx); err != nil || li != (store.LeaderInfo{ID: "beta", Address: "10.0.0.12:7400"}) {
		t.Fatalf("leader after alpha resigned: %+v, %v", li, err)
	}
}

// Closing a store ends its leadership at once (the lease is revoked, another replica takes
// over without waiting for the TTL), ends its watches with ErrClosed and fails later calls.
func TestCloseHandsOverAndEndsWatches(t *testing.T) {
	ec := testetcd.Start(t, testetcd.Options{})
	cfgA := testConfig("a", ec.Endpoints())
	cfgA.SessionTTL = 60 * time.Second
	a := open(t, cfgA)
	b := open(t, testConfig("b", ec.Endpoints()))
	ctx := ctxT(t, 30*time.Second)
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	won := campaignInBackground(t, b)
	ch, err := a.Watch(ctx, "/w/", 0)
	if err != nil {
		t.Fatal(err)
	}
	// A campaign still waiting when its store closes returns ErrClosed.
	waiting := open(t, testConfig("c", ec.Endpoints()))
	waitErr := make(chan error, 1)
	go func() {
		_, err := waiting.Campaign(ctx)
		waitErr <- err
	}()
	testetcd.WaitFor(t, 10*time.Second, func() error { // a, b and c hold election keys
		resp, err := a.cli.Get(ctx, a.key(electionPrefix)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 3 {
			return fmt.Errorf("%v campaigns queued (%v), want 3", resp, err)
		}
		return nil
	})
	if err := waiting.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waitErr:
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("campaign on a closed store: got %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("campaign still blocked 5s after its store closed")
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, "a after Close", la.Context(), time.Second)
	select {
	case <-won:
		t.Logf("b leads %v after a closed (a's TTL is 60s)", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("b did not take over within 10s of a closing with a 60s TTL")
	}
	select {
	case ev, ok := <-ch:
		if ok && !errors.Is(ev.Err, store.ErrClosed) {
			t.Fatalf("watch after close: got %+v, want an ErrClosed event", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not ended by Close")
	}
	if _, _, err := a.Get(ctx, "/x"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("get after close: %v, want ErrClosed", err)
	}
	if _, err := put(ctx, a, "/x", "y"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("txn after close: %v, want ErrClosed", err)
	}
}

// Losing the etcd quorum turns requests into ErrNoLeader within RequestTimeout, ends
// watches with an ErrNoLeader event, while a caller's own cancellation passes through and
// stale reads are still served.
func TestQuorumLossGivesErrNoLeader(t *testing.T) {
	ec := testetcd.Start(t, testetcd.Options{Members: 3})
	cfg := testConfig("a", []string{ec.Endpoint(0)})
	cfg.RequestTimeout = 2 * time.Second
	s := open(t, cfg)
	ctx := ctxT(t, 60*time.Second)
	rev, err := put(ctx, s, "/q", "1")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, "/q", rev)
	if err != nil {
		t.Fatal(err)
	}
	ec.Kill(1)
	ec.Kill(2)
	start := time.Now()
	_, err = put(ctx, s, "/q", "2")
	if !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("write without quorum: got %v, want ErrNoLeader", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("write without quorum took %v, want about the 2s request timeout", d)
	}
	if !strings.Contains(err.Error(), "may or may not have been applied") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("write error should say the outcome is unknown, in one line: %v", err)
	}
	if _, _, err := s.Get(ctx, "/q"); !errors.Is(err, store.ErrNoLeader) {
		t.Fatalf("linearizable read without quorum: got %v, want ErrNoLeader", err)
	}
	if kv, _, err := s.Get(ctx, "/q", store.Stale()); err != nil || string(kv.Value) != "1" {
		t.Fatalf("stale read without quorum: %v, %v", kv, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := put(cctx, s, "/q", "3"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled write: got %v, want context.Canceled", err)
	}
	select {
	case ev := <-ch:
		if !errors.Is(ev.Err, store.ErrNoLeader) {
			t.Fatalf("watch without quorum: got %+v, want an ErrNoLeader event", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch still silent 15s after the quorum was lost")
	}
	// A replica starting now reaches etcd but cannot write its cluster record: one line.
	cfg2 := testConfig("b", []string{ec.Endpoint(0)})
	cfg2.RequestTimeout = time.Second
	if _, err := Open(ctx, cfg2); err == nil || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "accepts connections but did not serve a write") || !strings.Contains(err.Error(), "etcdctl endpoint health") {
		t.Fatalf("open without quorum: got %v, want one line saying etcd cannot serve a write", err)
	} else {
		t.Logf("%v", err)
	}
	ec.Restart(1)
	testetcd.WaitFor(t, 20*time.Second, func() error { _, err := put(ctx, s, "/q", "4"); return err })
}

// Open fails fast, in one line that says what to fix, when etcd cannot be reached or TLS
// does not match.
func TestOpenErrorsAreOneClearLine(t *testing.T) {
	plain := testetcd.Start(t, testetcd.Options{})
	secure := testetcd.Start(t, testetcd.Options{TLS: true})
	closed := closedPort(t)
	silent := silentPort(t)
	otherCA := secure.ClientTLS()
	otherCA.RootCAs = x509.NewCertPool() // trusts nothing etcd presents
	noClientCert := secure.ClientTLS()
	noClientCert.Certificates = nil
	hostPort := strings.TrimPrefix(secure.Endpoint(0), "https://")

	for _, tc := range []struct {
		name      string
		endpoints []string
		tls       *tls.Config
		kind      error
		want      []string
	}{
		{"closed port", []string{"http://" + closed}, nil, ErrUnreachable, []string{"etcd at http://" + closed + " is unreachable", "connection refused", "check --etcd-endpoints"}},
		{"every endpoint closed", []string{closed, "127.0.0.1:1"}, nil, ErrUnreachable, []string{"etcd at " + closed + ", 127.0.0.1:1 are unreachable: " + closed + ": dial tcp", "check --etcd-endpoints"}},
		{"port that never answers", []string{silent}, nil, ErrUnreachable, []string{"etcd at " + silent + " is unreachable: no answer within 2s: check --etcd-endpoints"}},
		{"unknown CA", secure.Endpoints(), otherCA, ErrTLS, []string{"TLS with etcd at " + secure.Endpoint(0) + " failed", "certificate", "check --etcd-cacert"}},
		{"no client certificate", secure.Endpoints(), noClientCert, ErrTLS, []string{"TLS with etcd at", "certificate", "check --etcd-cacert"}},
		{"plain HTTP to a TLS etcd", []string{"http://" + hostPort}, nil, ErrTLS, []string{"TLS with etcd at http://" + hostPort + " failed", "serves TLS but the endpoint is plain HTTP: use https://"}},
		{"TLS to a plain etcd", []string{"https://" + strings.TrimPrefix(plain.Endpoint(0), "http://")}, secure.ClientTLS(), ErrTLS, []string{"TLS with etcd at https://", "speaks plain HTTP: use an http:// endpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("a", tc.endpoints)
			cfg.TLS = tc.tls
			cfg.DialTimeout = 2 * time.Second
			start := time.Now()
			s, err := Open(ctxT(t, 30*time.Second), cfg)
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("open took %v to fail, want about the 2s dial timeout at most", d)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %v", err, tc.kind)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			t.Logf("%s", msg)
		})
	}

	t.Run("right TLS works", func(t *testing.T) {
		cfg := testConfig("a", secure.Endpoints())
		cfg.TLS = secure.ClientTLS()
		s := open(t, cfg)
		ctx := ctxT(t, 10*time.Second)
		if _, err := put(ctx, s, "/tls", "ok"); err != nil {
			t.Fatal(err)
		}
		if kv, _, err := s.Get(ctx, "/tls"); err != nil || string(kv.Value) != "ok" {
			t.Fatalf("get over TLS: %v, %v", kv, err)
		}
	})

	t.Run("one endpoint down is fine", func(t *testing.T) {
		s := open(t, testConfig("a", []string{"127.0.0.1:1", plain.Endpoint(0)}))
		if _, err := put(ctxT(t, 10*time.Second), s, "/k", "v"); err != nil {
			t.Fatal(err)
		}
	})
}

// silentPort accepts connections and never answers (a black hole).
func silentPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return l.Addr().String()
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestConfigValidate(t *testing.T) {
	good := testConfig("a", []string{"https://10.0.0.5:2379", "10.0.0.6:2379"})
	good.TLS = &tls.Config{}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, tc := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no endpoints":       {func(c *Config) { c.Endpoints = nil }, "no etcd endpoints: set --etcd-endpoints"},
		"http with TLS":      {func(c *Config) { c.Endpoints = []string{"http://10.0.0.5:2379"} }, "is http:// but etcd TLS is configured: use https://"},
		"no port":            {func(c *Config) { c.Endpoints = []string{"https://10.0.0.5"} }, "has no host:port"},
		"bad scheme":         {func(c *Config) { c.Endpoints = []string{"unix:///run/etcd.sock"} }, `scheme "unix" is not supported`},
		"prefix without /":   {func(c *Config) { c.Prefix = "deckhand" }, "must start with '/'"},
		"prefix ending in /": {func(c *Config) { c.Prefix = "/deckhand/" }, "not end with '/'"},
		"short TTL":          {func(c *Config) { c.SessionTTL = 500 * time.Millisecond }, "at least 1s"},
		"no ID":              {func(c *Config) { c.ID = "" }, "replica ID is empty"},
		"bad address":        {func(c *Config) { c.Address = "controller-1" }, `replica address "controller-1" is not host:port`},
	} {
		cfg := good
		tc.mut(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// Two Deckhand clusters on two prefixes of one etcd do not see each other's keys; each has
// its own cluster ID, kept across reopening, and a replica of one cannot open the other.
func TestPrefixesIsolateClustersAndKeepTheirID(t *testing.T) {
	ec := testetcd.Start(t, testetcd.Options{})
	ctx := ctxT(t, 30*time.Second)
	cfgA := testConfig("a", ec.Endpoints())
	cfgA.Prefix = "/dh"
	cfgB := testConfig("b", ec.Endpoints())
	cfgB.Prefix = "/dh2" // a string prefix of the other's keys, not a key prefix
	a, b := open(t, cfgA), open(t, cfgB)
	if a.ClusterID() == "" || a.ClusterID() == b.ClusterID() {
		t.Fatalf("cluster IDs %q and %q: want two distinct IDs", a.ClusterID(), b.ClusterID())
	}
	if _, err := put(ctx, a, "/nodes/x", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := put(ctx, b, "/nodes/y", "b"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    *Store
		want string
	}{{a, "/nodes/x"}, {b, "/nodes/y"}} {
		kvs, _, err := tc.s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range kvs {
			if !strings.HasPrefix(kv.Key, reservedPrefix) {
				got = append(got, kv.Key)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint([]string{tc.want}) {
			t.Fatalf("prefix %s lists %v, want [%s]", tc.s.Prefix(), got, tc.want)
		}
	}
	// The keys are where an operator looks for them.
	raw, err := clientv3.New(clientv3.Config{Endpoints: ec.Endpoints(), Logger: newZapLogger(testLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	resp, err := raw.Get(ctx, "/dh/nodes/x")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "a" {
		t.Fatalf("etcd key /dh/nodes/x: %v, %v", resp, err)
	}
	if resp, err := raw.Get(ctx, "/dh/_deckhand/cluster"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != a.ClusterID() {
		t.Fatalf("cluster key: %v, %v", resp, err)
	}

	cfgA2 := cfgA
	cfgA2.ID = "a2"
	if id := open(t, cfgA2).ClusterID(); id != a.ClusterID() {
		t.Fatalf("reopened prefix /dh has cluster %s, was %s", id, a.ClusterID())
	}
	cfgA2.ClusterID = a.ClusterID()
	open(t, cfgA2)
	cfgA2.ClusterID = b.ClusterID()
	_, err = Open(ctx, cfgA2)
	if !errors.Is(err, ErrForeignCluster) || !strings.Contains(err.Error(), "holds Deckhand cluster "+a.ClusterID()+", not "+b.ClusterID()) {
		t.Fatalf("open /dh as cluster %s: got %v, want ErrForeignCluster naming both", b.ClusterID(), err)
	}
	// A replica of cluster A pointed at an empty prefix (a typo) creates nothing there.
	cfgC := cfgA
	cfgC.ID = "c"
	cfgC.Prefix = "/dhh"
	cfgC.ClusterID = a.ClusterID()
	_, err = Open(ctx, cfgC)
	if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), "--etcd-prefix") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("open an empty prefix as cluster %s: got %v, want ErrNoCluster naming --etcd-prefix and --data-dir", a.ClusterID(), err)
	}
	if resp, err := raw.Get(ctx, "/dhh", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("refused open wrote %d keys under the empty prefix (%v)", resp.Count, err)
	}
}

// etcd's own limits surface as ErrInvalid with the fix: more operations than
// --max-txn-ops, a key written twice, keys outside the '/' namespace.
func TestEtcdLimitsAreErrInvalid(t *testing.T) {
	ec := testetcd.Start(t, testetcd.Options{})
	s := open(t, testConfig("a", ec.Endpoints()))
	ctx := ctxT(t, 30*time.Second)
	var ops []store.Op
	for i := range 129 {
		ops = append(ops, store.Put(fmt.Sprintf("/many/%d", i), nil))
	}
	_, err := s.Txn(ctx, store.Txn{Then: ops})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("129 ops: got %v, want ErrInvalid naming --max-txn-ops", err)
	}
	if _, err := s.Txn(ctx, store.Txn{Then: ops[:128]}); err != nil {
		t.Fatalf("128 ops: %v", err)
	}
	_, err = s.Txn(ctx, store.Txn{Then: []store.Op{store.Put("/dup", []byte("1")), store.Put("/dup", []byte("2"))}})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "written twice") {
		t.Fatalf("same key twice: got %v, want ErrInvalid", err)
	}
	if _, err := put(ctx, s, "relative", "x"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("key without a leading '/': got %v, want ErrInvalid", err)
	}
	if _, _, err := s.List(ctx, "relative"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("prefix without a leading '/': got %v, want ErrInvalid", err)
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, seed := range []string{"https://10.0.0.5:2379", "http://127.0.0.1:2379", "10.0.0.6:2379", "[::1]:2379", "https://h", "unix:///x", "http://h:1/p", "", "://"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, raw string, haveTLS bool) {
		ep, err := parseEndpoint(raw, haveTLS)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error for %q: %v", raw, err)
			}
			return
		}
		if _, port, err := net.SplitHostPort(ep.host); err != nil || port == "" {
			t.Fatalf("accepted %q with host %q", raw, ep.host)
		}
		if haveTLS && !ep.tls {
			t.Fatalf("accepted %q as plain HTTP although TLS is configured", raw)
		}
	})
}

package controller_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller"
	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

func getNode(c *testcluster.Cluster, name string) (*apiv1.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := apiv1.NewNodeServiceClient(c.Client()).GetNode(ctx, &apiv1.GetNodeRequest{Name: name})
	return resp.GetNode(), err
}

func readyWithSerial(c *testcluster.Cluster, name string, serial func(string) error) error {
	n, err := getNode(c, name)
	if err != nil {
		return err
	}
	if n.GetState() != apiv1.NodeState_NODE_STATE_READY {
		return fmt.Errorf("node %s is %v", name, n.GetState())
	}
	return serial(n.GetCertificateSerial())
}

// deckctl node delete of a node in the Kubernetes cluster left it stuck: the agent exited for
// good and re-enrolling needed its data dir deleted by hand.
func TestDeleteNodeInClusterNeedsForceAndTheNodeEnrollsAgain(t *testing.T) {
	c := testcluster.New(t, 1)
	cfg := c.AgentConfig("node-1", c.CreateToken(1))
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatal(err)
	}
	var first string
	testcluster.WaitFor(t, 15*time.Second, func() error {
		return readyWithSerial(c, "node-1", func(s string) error { first = s; return nil })
	})

	// The node joined the Kubernetes cluster as a worker.
	rec, _ := proto.Marshal(&apiv1.Cluster{Nodes: []*apiv1.ClusterNode{{Name: "node-1", Role: taskv1.NodeRole_NODE_ROLE_WORKER}}})
	if _, err := c.Controllers[0].Store().Txn(context.Background(), store.Txn{Then: []store.Op{store.Put(workflows.ClusterKey, rec)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodesAPI := apiv1.NewNodeServiceClient(c.Client())
	_, err := nodesAPI.DeleteNode(ctx, &apiv1.DeleteNodeRequest{Name: "node-1"})
	if status.Code(err) != codes.FailedPrecondition || api.Reason(err) != apiv1.ErrorReason_ERROR_REASON_WRONG_STATE ||
		!strings.Contains(err.Error(), "deckctl reset node-1") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("delete of a node in the cluster: %v", err)
	}
	if _, err := getNode(c, "node-1"); err != nil {
		t.Fatalf("the refused delete removed the node: %v", err)
	}
	if _, err := nodesAPI.DeleteNode(ctx, &apiv1.DeleteNodeRequest{Name: "node-1", Force: true}); err != nil {
		t.Fatalf("forced delete: %v", err)
	}

	// The agent keeps running and says in one line that it needs a new token.
	testcluster.WaitFor(t, 10*time.Second, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "revoked") && strings.Contains(line, "deckhand-agent --token-file") {
				return nil
			}
		}
		return errors.New("no line saying the agent needs a new token")
	})
	if exited, err := c.Agents["node-1"].Exited(); exited {
		t.Fatalf("the agent of the deleted node exited: %v", err)
	}
	// The token it enrolled with does not bring it back: the delete sticks.
	if _, err := getNode(c, "node-1"); status.Code(err) != codes.NotFound {
		t.Fatalf("the deleted node came back: %v", err)
	}

	// Restarted with a new token and the same data dir, it enrolls again: a new certificate.
	c.StopAgent("node-1")
	cfg.Token = c.CreateToken(1)
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatalf("restart with a new token: %v", err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error {
		return readyWithSerial(c, "node-1", func(s string) error {
			if s == first {
				return errors.New("still the old certificate")
			}
			return nil
		})
	})
}

// Node certificates expired after a year and nothing renewed them.
func TestAgentRenewsItsCertificateBeforeExpiry(t *testing.T) {
	const validity = 4 * time.Second
	c := testcluster.NewWith(t, 1, func(cfg *controller.Config) { cfg.AgentCertValidity = validity })
	ag, err := c.StartAgent(c.AgentConfig("node-1", c.CreateToken(1)))
	if err != nil {
		t.Fatal(err)
	}
	certOnDisk := func() (*os.FileInfo, string, time.Time) {
		b, err := os.ReadFile(filepath.Join(ag.Dir, "node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pki.ParseCert(b)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(ag.Dir, "node.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if cert.Subject.CommonName != "node-1" {
			t.Fatalf("renewed certificate is for %q", cert.Subject.CommonName)
		}
		return &fi, pki.SerialHex(cert), cert.NotAfter
	}
	_, first, expires := certOnDisk()
	// Past the first certificate's expiry the node is still Ready, on a newer certificate
	// that the node record names and the agent holds on disk, 0600.
	testcluster.WaitFor(t, 5*time.Second+validity, func() error {
		if time.Now().Before(expires.Add(time.Second)) {
			return errors.New("the first certificate has not expired yet")
		}
		return readyWithSerial(c, "node-1", func(s string) error {
			fi, onDisk, _ := certOnDisk()
			if s == first || s != onDisk {
				return fmt.Errorf("node record serial %s, first %s, on disk %s", s, first, onDisk)
			}
			if (*fi).Mode().Perm() != 0o600 {
				return fmt.Errorf("node.crt is %v", (*fi).Mode().Perm())
			}
			if ag.Connected() == "" {
				return errors.New("agent not connected")
			}
			return nil
		})
	})
	nodes, err := c.Nodes()
	if err != nil || len(nodes) != 1 {
		t.Fatalf("renewal changed the inventory: %v %v", nodes, err)
	}
}

// renewAs asks for a new certificate with the node certificate in dir, as the agent does.
func renewAs(t *testing.T, c *testcluster.Cluster, dir string) (*agentv1.RenewCertificateResponse, error) {
	t.Helper()
	cc := agentConn(t, c, dir)
	defer cc.Close()
	return renewOver(t, cc)
}

// agentConn dials the first controller with the node certificate in dir.
func agentConn(t *testing.T, c *testcluster.Cluster, dir string) *grpc.ClientConn {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert, err := tls.X509KeyPair(read("node.crt"), read("node.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(read("ca.crt"))
	cc, err := grpc.NewClient("passthrough:///"+c.Addrs()[0], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// renewOver asks for a new certificate over cc.
func renewOver(t *testing.T, cc *grpc.ClientConn) (*agentv1.RenewCertificateResponse, error) {
	t.Helper()
	_, csr, err := pki.NewKeyAndCSR("node-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return agentv1.NewAgentServiceClient(cc).RenewCertificate(ctx, &agentv1.RenewCertificateRequest{CsrPem: csr})
}

// A renewal whose answer is lost must not cut the node off: its current certificate stays
// valid until the new one is used, and it may renew again with it.
func TestALostRenewalDoesNotCutTheNodeOff(t *testing.T) {
	// Renewal is allowed from half a certificate's lifetime; the agent renews on its own at
	// two thirds (here 23 s after enrolling), after this test's renewals.
	c := testcluster.NewWith(t, 1, func(cfg *controller.Config) { cfg.AgentCertValidity = 40 * time.Second })
	ag, err := c.StartAgent(c.AgentConfig("node-1", c.CreateToken(1)))
	if err != nil {
		t.Fatal(err)
	}
	var first string
	testcluster.WaitFor(t, 15*time.Second, func() error {
		return readyWithSerial(c, "node-1", func(s string) error { first = s; return nil })
	})
	waitRenewalDue(t, ag.Dir)
	if _, err := renewAs(t, c, ag.Dir); err != nil { // the answer never reaches the agent
		t.Fatalf("renew: %v", err)
	}
	// The agent reconnects with the certificate it has.
	c.CutAgent("node-1", true)
	testcluster.WaitFor(t, 10*time.Second, func() error {
		if ag.Connected() != "" {
			return errors.New("still connected")
		}
		return nil
	})
	c.CutAgent("node-1", false)
	testcluster.WaitFor(t, 15*time.Second, func() error {
		if ag.Connected() == "" {
			return errors.New("the agent did not reconnect with its certificate")
		}
		return nil
	})
	// It renews again with it; the certificate nobody received is replaced.
	resp, err := renewAs(t, c, ag.Dir)
	if err != nil {
		t.Fatalf("renew again with the current certificate: %v", err)
	}
	next, _ := pki.ParseCert(resp.GetCertificatePem())
	n, err := getNode(c, "node-1")
	if err != nil || n.GetCertificateSerial() != pki.SerialHex(next) || n.GetPreviousCertificateSerial() != first {
		t.Fatalf("node after the second renewal: %v %v (first %s, new %s)", n, err, first, pki.SerialHex(next))
	}
}

// waitRenewalDue waits until half the lifetime of the node certificate in dir has passed.
func waitRenewalDue(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert(b)
	if err != nil {
		t.Fatal(err)
	}
	due := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	testcluster.WaitFor(t, time.Until(due)+5*time.Second, func() error {
		if time.Now().Before(due.Add(100 * time.Millisecond)) {
			return fmt.Errorf("the certificate is renewable from %v", due)
		}
		return nil
	})
}

// nodeVersion is how many times the node record was written.
func nodeVersion(t *testing.T, c *testcluster.Cluster, name string) int64 {
	t.Helper()
	kv, _, err := c.Controllers[0].Store().Get(context.Background(), "/nodes/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return kv.Version
}

// A stolen agent certificate wrote to raft without limit through RenewCertificate: every
// call signed a certificate and wrote the node record.
func TestRenewalsFromOneCertificateAreBounded(t *testing.T) {
	c := testcluster.NewWith(t, 1, func(cfg *controller.Config) { cfg.AgentCertValidity = 2 * time.Second })
	ag, err := c.StartAgent(c.AgentConfig("node-1", c.CreateToken(1)))
	if err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error {
		return readyWithSerial(c, "node-1", func(string) error { return nil })
	})
	c.StopAgent("node-1") // its certificate is now the attacker's
	waitRenewalDue(t, ag.Dir)
	before := nodeVersion(t, c, "node-1")
	cc := agentConn(t, c, ag.Dir)
	defer cc.Close()
	var ok, limited int
	for range 50 {
		_, err := renewOver(t, cc)
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
			limited++
			if !strings.Contains(err.Error(), "retry in") {
				t.Fatalf("refusal does not say when to retry: %v", err)
			}
		default:
			t.Fatalf("renewal: %v", err)
		}
	}
	writes := nodeVersion(t, c, "node-1") - before
	t.Logf("50 renewals: %d signed, %d refused, %d node record writes", ok, limited, writes)
	// Each signed renewal writes the record once; the stopped agent's liveness transitions
	// (NotReady, Lost) may write it too.
	if ok > 4 || limited < 46 || writes > int64(ok)+2 {
		t.Fatalf("50 renewals from one certificate: %d signed, %d refused, %d node record writes; want at most a few", ok, limited, writes)
	}
	if n, err := c.Metric(0, "deckhand_agent_messages_dropped_total", "reason", "renewal_rate"); err != nil || n < float64(limited) {
		t.Fatalf("renewal_rate drops counted: %v %v, want %d", n, err, limited)
	}
}

// A certificate is renewed from half its lifetime on: earlier renewals are refused.
func TestAnEarlyRenewalIsRefused(t *testing.T) {
	c := testcluster.New(t, 1)
	ag, err := c.StartAgent(c.AgentConfig("node-1", c.CreateToken(1)))
	if err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error {
		return readyWithSerial(c, "node-1", func(string) error { return nil })
	})
	before := nodeCertificates(t, c, "node-1")
	_, err = renewAs(t, c, ag.Dir)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "half its lifetime") {
		t.Fatalf("renewal of a fresh certificate: %v", err)
	}
	// The running agent still writes its facts and liveness into the record, so compare the
	// certificates it names, not its version.
	if after := nodeCertificates(t, c, "node-1"); after != before {
		t.Fatalf("a refused renewal changed the node's certificates: %s, then %s", before, after)
	}
}

// nodeCertificates is the current and the previous certificate serial of a node's record.
func nodeCertificates(t *testing.T, c *testcluster.Cluster, name string) string {
	t.Helper()
	kv, _, err := c.Controllers[0].Store().Get(context.Background(), "/nodes/"+name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := nodes.Decode(kv)
	if err != nil {
		t.Fatal(err)
	}
	return n.GetCertificateSerial() + "/" + n.GetPreviousCertificateSerial()
}

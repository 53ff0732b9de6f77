package testcluster

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/deckhandhq/deckhand/internal/testkit/sim/seedimages"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// Mirror starts a real OCI registry serving test-built images (layers random layers of
// layerSize bytes each) under the control-plane names of version, and returns its URL.
func Mirror(t testing.TB, version string, layerSize, layers int64) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	if err := seedimages.ControlPlane(strings.TrimPrefix(srv.URL, "http://"), version, layerSize, layers); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// PackageRepo serves the signing key of pkgs.k8s.io-style repositories (one per minor), as
// a mirror would; it returns the base URL of minor's (for example "v1.33").
func PackageRepo(t testing.TB, minor string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/core:/stable:/", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/deb/Release.key") {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "-----BEGIN PGP PUBLIC KEY BLOCK-----\ntest\n-----END PGP PUBLIC KEY BLOCK-----\n")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/core:/stable:/" + minor + "/deb"
}

// SimCluster points the kubeadm SIMULATION of every host of this test at one shared
// cluster directory and returns it.
func SimCluster(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("DECKHAND_SIM_CLUSTER", dir)
	return dir
}

// StartHosts starts an agent with the host SIMULATION for each name and waits until all
// are Ready.
func (c *Cluster) StartHosts(names ...string) {
	c.t.Helper()
	for _, n := range names {
		cfg := c.AgentConfig(n, c.CreateToken(1))
		InstallSim(c.t, cfg.Root)
		if _, err := c.StartAgent(cfg); err != nil {
			c.t.Fatal(err)
		}
	}
	WaitFor(c.t, 30*time.Second, func() error {
		ns, err := c.Nodes()
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, n := range ns {
			ready[n.GetName()] = n.GetState() == apiv1.NodeState_NODE_STATE_READY
		}
		for _, n := range names {
			if !ready[n] {
				return fmt.Errorf("%s not Ready", n)
			}
		}
		return nil
	})
}

// RestartAgent stops an agent and starts it again with the same root and data dir.
func (c *Cluster) RestartAgent(name string) {
	c.t.Helper()
	ag := c.Agents[name]
	c.StopAgent(name)
	cfg := c.AgentConfig(name, "")
	cfg.Root, cfg.DataDir = ag.Root, ag.Dir
	if _, err := c.StartAgent(cfg); err != nil {
		c.t.Fatal(err)
	}
}

// Workflow reads a workflow through the API.
func (c *Cluster) Workflow(id string) (*apiv1.Workflow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := apiv1.NewWorkflowServiceClient(c.Client()).GetWorkflow(ctx, &apiv1.GetWorkflowRequest{Id: id})
	return resp.GetWorkflow(), err
}

// AdminConfig is the path of the admin credentials deckctl uses.
func (c *Cluster) AdminConfig() string { return filepath.Join(c.Controllers[0].Dir, "admin.conf") }

// Exists reports whether path exists under a host root.
func Exists(root, path string) bool {
	_, err := os.Stat(filepath.Join(root, path))
	return err == nil
}

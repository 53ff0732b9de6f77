package loadutil

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/client"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// SimClusterConfig is a controller process to start and the simulated agents to enroll.
type SimClusterConfig struct {
	Tool          string // names the temp dir and the progress line
	ControllerBin string
	LogLevel      string        // the controller's --log-level
	Heartbeat     time.Duration // --heartbeat-interval; not ready after 5 of them
	ReadyTimeout  time.Duration // for every agent to be Ready
	Names         []string      // one simulated agent each
	TaskTime      time.Duration // how long each of their tasks takes
	DebugAddr     string        // the controller's --debug-addr (pprof on loopback); "" for none
}

// SimCluster is one controller process and its simulated agents, enrolled and Ready.
type SimCluster struct {
	Ctx   context.Context // ends with Stop
	Admin *client.Client  // with admin.conf, 256 MiB answers (a big workflow is MiBs)
	Addr  string
	PID   int
	// MetricsAddr serves the controller's /metrics (see Counter).
	MetricsAddr string
	Agents      []*SimAgent
	Stop        func()
}

// StartSimCluster starts a controller in a new data dir, enrolls one simulated agent per
// name through the real Enroll RPC and waits until they are all Ready.
func StartSimCluster(cfg SimClusterConfig) (_ *SimCluster, err error) {
	var undo []func()
	stop := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	dir, err := os.MkdirTemp("", cfg.Tool+"-")
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = os.RemoveAll(dir) })
	addr, metrics := FreeAddr(), FreeAddr()
	cmd := exec.Command(cfg.ControllerBin, "--data-dir", dir, "--listen", addr, "--log-level", cfg.LogLevel,
		"--heartbeat-interval", cfg.Heartbeat.String(), "--node-not-ready-after", (5 * cfg.Heartbeat).String(),
		"--metrics-listen", metrics)
	if cfg.DebugAddr != "" {
		cmd.Args = append(cmd.Args, "--debug-addr", cfg.DebugAddr)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// admin.conf appears once the controller published its CA.
	var admin *client.Client
	if err := Poll(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		admin, err = client.New(ctx, client.Options{ConfigFile: filepath.Join(dir, "admin.conf"), NoRefresh: true,
			DialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20))}})
		return err
	}); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = admin.Close() })
	var token, pin string
	if err := Poll(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := apiv1.NewTokenServiceClient(admin).CreateToken(ctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(time.Hour), Usages: uint32(len(cfg.Names))})
		if err != nil {
			return err
		}
		token, pin = resp.GetSecret(), resp.GetCaCertHash()
		return nil
	}); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	t0 := time.Now()
	agents, err := EnrollSimAgents(ctx, addr, token, pin, cfg.Names, cfg.TaskTime)
	if err != nil {
		cancel()
		return nil, err
	}
	var wg sync.WaitGroup
	undo = append(undo, func() { cancel(); wg.Wait() })
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Run(ctx, []string{addr})
		}()
	}
	if err := Poll(cfg.ReadyTimeout, func() error { return allReady(ctx, admin, len(cfg.Names)) }); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s: %d simulated agents enrolled and Ready in %v\n", cfg.Tool, len(cfg.Names), time.Since(t0).Round(time.Millisecond))
	return &SimCluster{Ctx: ctx, Admin: admin, Addr: addr, PID: cmd.Process.Pid, MetricsAddr: metrics, Agents: agents, Stop: stop}, nil
}

// Counter reads the value of the controller's counter name whose label is value (e.g.
// deckhand_step_results_total, recorded_by, session) from its /metrics; ok is false when
// the controller does not export it (an older build).
func (c *SimCluster) Counter(name, label, value string) (v float64, ok bool) {
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + c.MetricsAddr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, false
	}
	for _, m := range families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue(), m.GetCounter() != nil
			}
		}
	}
	return 0, false
}

// allReady says how many of want nodes are not Ready yet.
func allReady(ctx context.Context, admin *client.Client, want int) error {
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	ready := 0
	for token := ""; ; {
		resp, err := apiv1.NewNodeServiceClient(admin).ListNodes(rctx, &apiv1.ListNodesRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return err
		}
		for _, n := range resp.GetNodes() {
			if n.GetState() == apiv1.NodeState_NODE_STATE_READY {
				ready++
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if ready < want {
		return fmt.Errorf("%d of %d nodes Ready", ready, want)
	}
	return nil
}

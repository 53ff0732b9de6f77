// Command applyload measures what the workflow engine adds to an apply: it starts one
// deckhand-controller process, enrolls N simulated agents (node-1..node-N) through the real
// Enroll RPC with mTLS sessions, and applies a cluster of 1 control plane (node-1) and N-1
// workers. Every task takes a fixed time on the simulated agents, so the apply's wall time
// can be set against a lower bound computed from the workflow's DAG. Used by scripts/bench.sh.
//
// The simulated agents are loadutil.SimAgent: each task takes --task-time and succeeds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/scripts/internal/loadutil"
)

// Config is what one run measures.
type Config struct {
	ControllerBin string
	Nodes         int
	Concurrency   int
	TaskTime      time.Duration
	Heartbeat     time.Duration
	Timeout       time.Duration // the whole apply
	Stall         time.Duration // no workflow change for this long ends the run
	LogLevel      string        // the controller's
	DebugAddr     string        // the controller's --debug-addr; "" for none
	// UpgradeTo, when set, upgrades the cluster to this release after the apply, with
	// MaxUnavailable workers at once, and measures that too.
	UpgradeTo, MaxUnavailable string
	// Provider is the cluster document's spec.network.provider ("": the default, bridge).
	Provider string
	// JoinInto, when set, measures instead one join (a worker, as deckctl join NODE sends
	// it) into a recorded cluster of each of these sizes, every join task taking TaskTime;
	// the clusters are applied first with every task taking RecordTaskTime.
	JoinInto       []int
	RecordTaskTime time.Duration
	// Runs is how many times the apply (and the upgrade) is measured, each on a fresh
	// controller and fresh agents; with more than one, the medians close the output.
	Runs int
}

// DefaultConfig is the benchmark's standard run.
func DefaultConfig() Config {
	return Config{ControllerBin: "bin/deckhand-controller", Nodes: 500, Concurrency: 50, TaskTime: 200 * time.Millisecond,
		Heartbeat: 2 * time.Second, Timeout: 30 * time.Minute, Stall: 2 * time.Minute, LogLevel: "warn", Runs: 1}
}

// Validate explains what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.Nodes < 1:
		return fmt.Errorf("--nodes is %d; give at least 1 (node-1 is the control plane)", c.Nodes)
	case c.Concurrency < 1 || c.Concurrency > 1000:
		return fmt.Errorf("--concurrency is %d; give 1..1000 (spec.concurrency of the cluster document)", c.Concurrency)
	case c.TaskTime < 0:
		return fmt.Errorf("--task-time is %v; give 0 or more", c.TaskTime)
	case c.Heartbeat <= 0 || c.Timeout <= 0 || c.Stall <= 0:
		return errors.New("--heartbeat, --timeout and --stall must be positive")
	case c.RecordTaskTime < 0:
		return fmt.Errorf("--record-task-time is %v; give 0 or more", c.RecordTaskTime)
	case c.Runs < 1 || c.Runs > 20:
		return fmt.Errorf("--runs is %d; give 1..20", c.Runs)
	case c.Runs > 1 && len(c.JoinInto) > 0:
		return errors.New("--runs repeats the apply; --join-into measures its joins once: leave --runs out")
	}
	for _, n := range c.JoinInto {
		if n < 1 || n > 5000 {
			return fmt.Errorf("--join-into %d: give cluster sizes of 1..5000 nodes", n)
		}
	}
	return nil
}

func main() {
	cfg := DefaultConfig()
	flag.StringVar(&cfg.ControllerBin, "controller-bin", cfg.ControllerBin, "deckhand-controller binary")
	flag.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "simulated nodes: node-1 is the control plane, the rest workers")
	flag.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "spec.concurrency: node lanes in flight at once")
	flag.DurationVar(&cfg.TaskTime, "task-time", cfg.TaskTime, "how long every simulated task takes")
	flag.DurationVar(&cfg.Heartbeat, "heartbeat", cfg.Heartbeat, "agent heartbeat interval")
	flag.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "give up when the apply has not ended by then")
	flag.DurationVar(&cfg.Stall, "stall", cfg.Stall, "give up when the workflow has not changed for this long")
	flag.StringVar(&cfg.DebugAddr, "controller-debug-addr", "", "the controller's --debug-addr (loopback pprof, e.g. 127.0.0.1:6061) to profile it during a run")
	flag.StringVar(&cfg.LogLevel, "controller-log-level", cfg.LogLevel, "the controller's --log-level")
	flag.StringVar(&cfg.UpgradeTo, "upgrade-to", "", "after the apply, upgrade the cluster to this release (v1.34.12) and measure it")
	flag.StringVar(&cfg.MaxUnavailable, "max-unavailable", "10%", "the upgrade's workers at once: N or P%")
	flag.StringVar(&cfg.Provider, "provider", "", "the cluster's spec.network.provider (default: Deckhand's default, bridge)")
	flag.IntVar(&cfg.Runs, "runs", cfg.Runs, "measure the apply (and the upgrade) this many times, each on a fresh controller, and print the medians")
	joinInto := flag.String("join-into", "", "instead of an apply: time one join into recorded clusters of these sizes (1000,3) and count the tasks it sends to each host")
	flag.DurationVar(&cfg.RecordTaskTime, "record-task-time", 0, "with --join-into: how long each task of the apply that records the cluster takes")
	flag.Parse()
	for _, f := range strings.Split(*joinInto, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "applyload: --join-into %q: give cluster sizes, comma-separated\n", *joinInto)
			os.Exit(2)
		}
		cfg.JoinInto = append(cfg.JoinInto, n)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "applyload:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "applyload:", err)
		os.Exit(1)
	}
}

func run(cfg Config) error {
	// The machine may be shared: its load goes with the figures.
	fmt.Printf("load average  %s at the start\n", loadAvg())
	defer func() { fmt.Printf("load average  %s at the end\n", loadAvg()) }()
	if len(cfg.JoinInto) > 0 {
		return runJoins(cfg)
	}
	var ms []measure
	for i := range cfg.Runs {
		if cfg.Runs > 1 {
			fmt.Printf("\nrun %d of %d, load average %s\n", i+1, cfg.Runs, loadAvg())
		}
		m, err := runApply(cfg)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	if cfg.Runs > 1 {
		printMedians(ms)
	}
	return nil
}

// measure is what one run's medians are taken of.
type measure struct {
	ratio, msPerStep float64 // the apply's
	upgradeRatio     float64 // 0 when no upgrade ran
}

// median is the middle of xs (the mean of the two middle values for an even count); 0
// for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printMedians(ms []measure) {
	line := func(name, unit string, get func(measure) float64) {
		var xs []float64
		var each []string
		for _, m := range ms {
			xs = append(xs, get(m))
			each = append(each, fmt.Sprintf("%.2f", get(m)))
		}
		fmt.Printf("  %-18s %.2f%s (runs: %s)\n", name, median(xs), unit, strings.Join(each, ", "))
	}
	fmt.Printf("\nmedians of %d runs\n", len(ms))
	line("apply ratio", "", func(m measure) float64 { return m.ratio })
	line("apply CPU a step", " ms", func(m measure) float64 { return m.msPerStep })
	if ms[0].upgradeRatio > 0 {
		line("upgrade ratio", "", func(m measure) float64 { return m.upgradeRatio })
	}
}

// runApply measures one apply (and the upgrade after it) on a fresh controller and agents.
func runApply(cfg Config) (measure, error) {
	var m measure
	names := make([]string, cfg.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("node-%d", i+1)
	}
	c, err := start(cfg, names)
	if err != nil {
		return m, err
	}
	defer c.Stop()
	ctx, admin, pid := c.Ctx, c.Admin, c.PID

	wfAPI := apiv1.NewWorkflowServiceClient(admin)
	cpu0 := loadutil.CPUTicks(pid)
	start := time.Now()
	created, err := wfAPI.CreateWorkflow(ctx, &apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{
		Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: clusterYAML(cfg)}}}})
	if err != nil {
		return m, fmt.Errorf("create the apply workflow: %w", err)
	}
	id := created.GetWorkflow().GetId()
	hdr, err := follow(ctx, wfAPI, id, cfg)
	observed := time.Since(start)
	cpu := float64(loadutil.CPUTicks(pid)-cpu0) / 100 // USER_HZ is 100 on Linux
	peak := loadutil.StatusMiB(pid, "VmHWM:")
	if err != nil {
		return m, err
	}
	wfResp, err := wfAPI.GetWorkflow(ctx, &apiv1.GetWorkflowRequest{Id: id})
	if err != nil {
		return m, fmt.Errorf("get workflow %s: %w", id, err)
	}
	wf := wfResp.GetWorkflow()
	if hdr.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		describe(os.Stdout, wf)
		return m, fmt.Errorf("workflow %s ended %s after %v", id, hdr.GetState(), observed.Round(time.Millisecond))
	}
	m.ratio, m.msPerStep = report(cfg, wf, observed, peak, cpu)
	resultWrites(c)
	if err := breakdown(ctx, apiv1.NewTaskServiceClient(admin), wf); err != nil {
		fmt.Printf("  (no breakdown: %v)\n", err)
	}
	if cfg.UpgradeTo == "" {
		return m, nil
	}

	cpu0 = loadutil.CPUTicks(pid)
	start = time.Now()
	created, err = wfAPI.CreateWorkflow(ctx, &apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{
		Kind: &apiv1.WorkflowSpec_Upgrade{Upgrade: &apiv1.UpgradeWorkflow{KubernetesVersion: cfg.UpgradeTo, MaxUnavailable: cfg.MaxUnavailable}}}})
	if err != nil {
		return m, fmt.Errorf("create the upgrade workflow: %w", err)
	}
	id = created.GetWorkflow().GetId()
	hdr, err = follow(ctx, wfAPI, id, cfg)
	observed = time.Since(start)
	cpu = float64(loadutil.CPUTicks(pid)-cpu0) / 100
	if err != nil {
		return m, err
	}
	if wfResp, err = wfAPI.GetWorkflow(ctx, &apiv1.GetWorkflowRequest{Id: id}); err != nil {
		return m, fmt.Errorf("get workflow %s: %w", id, err)
	}
	wf = wfResp.GetWorkflow()
	if hdr.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		describe(os.Stdout, wf)
		return m, fmt.Errorf("upgrade %s ended %s after %v", id, hdr.GetState(), observed.Round(time.Millisecond))
	}
	m.upgradeRatio = reportUpgrade(cfg, wf, observed, loadutil.StatusMiB(pid, "VmHWM:"), cpu)
	return m, nil
}

// resultWrites prints which writes recorded the task steps' results so far: the pass
// that ends the step, or the session alone (controller metrics; a build without them
// prints nothing).
func resultWrites(c *loadutil.SimCluster) {
	byPass, ok1 := c.Counter("deckhand_step_results_total", "recorded_by", "step_write")
	bySession, ok2 := c.Counter("deckhand_step_results_total", "recorded_by", "session")
	if ok1 && ok2 {
		fmt.Printf("  results recorded with their step's end: %.0f; by their session alone: %.0f\n", byPass, bySession)
	}
}

// start starts a controller and one simulated agent per name, every task taking
// cfg.TaskTime, all Ready.
func start(cfg Config, names []string) (*loadutil.SimCluster, error) {
	return loadutil.StartSimCluster(loadutil.SimClusterConfig{Tool: "applyload", ControllerBin: cfg.ControllerBin, LogLevel: cfg.LogLevel,
		Heartbeat: cfg.Heartbeat, ReadyTimeout: cfg.Timeout, Names: names, TaskTime: cfg.TaskTime, DebugAddr: cfg.DebugAddr})
}

// upgradeIdealTasks is the upgrade's lower bound in units of the task time: the health
// check (1 T), every node's staging (its packages, then its images: 2 T), the
// control plane's chain and then each batch of workers one after another, each chain 6
// tasks (kubeadm, kubeadm upgrade, drain, kubelet, uncordon, ready; the record steps are
// controller actions):
//
//	batch = max(1, workers × P%) (or N), batches = ceil(workers / batch)
//	ideal = T × (3 + 6 × (1 + batches))
func upgradeIdealTasks(nodes int, maxUnavailable string) (tasks, batches, batch int, err error) {
	workers := nodes - 1
	switch {
	case strings.HasSuffix(maxUnavailable, "%"):
		var p int
		if _, err := fmt.Sscanf(maxUnavailable, "%d%%", &p); err != nil || p < 1 || p > 100 {
			return 0, 0, 0, fmt.Errorf("--max-unavailable %q: give N or P%%", maxUnavailable)
		}
		batch = max(1, workers*p/100)
	default:
		if _, err := fmt.Sscanf(maxUnavailable, "%d", &batch); err != nil || batch < 1 {
			return 0, 0, 0, fmt.Errorf("--max-unavailable %q: give N or P%%", maxUnavailable)
		}
	}
	if workers > 0 {
		batches = (workers + batch - 1) / batch
	}
	return 3 + 6*(1+batches), batches, batch, nil
}

func reportUpgrade(cfg Config, wf *apiv1.Workflow, observed time.Duration, peakMiB, cpuSeconds float64) (ratio float64) {
	wall := wf.GetUpdated().AsTime().Sub(wf.GetCreated().AsTime())
	tasks, batches, batch, err := upgradeIdealTasks(cfg.Nodes, cfg.MaxUnavailable)
	if err != nil {
		fmt.Println(err)
		return
	}
	ideal := time.Duration(tasks) * cfg.TaskTime
	taskSteps := 0
	for _, s := range wf.GetSteps() {
		if s.GetTaskId() != "" {
			taskSteps++
		}
	}
	fmt.Printf("\nupgrade       to %s, --max-unavailable %s: batches of %d workers\n", cfg.UpgradeTo, cfg.MaxUnavailable, batch)
	fmt.Printf("wall          %v (workflow created to succeeded; %v as the client saw it)\n", wall.Round(time.Millisecond), observed.Round(time.Millisecond))
	fmt.Printf("ideal         %v = T x (3 + 6 x (1 + batches)) = %d T, batches = %d\n", ideal, tasks, batches)
	fmt.Printf("              (health 1 T, staging 2 T, the control plane's chain and each batch's 6 T one after another)\n")
	ratio = wall.Seconds() / ideal.Seconds()
	fmt.Printf("ratio         %.2f (wall / ideal)\n", ratio)
	fmt.Printf("controller    peak RSS %.1f MiB, %.1f CPU-seconds during the upgrade, %.2f ms per step\n", peakMiB, cpuSeconds, 1000*cpuSeconds/float64(max(1, len(wf.GetSteps()))))
	fmt.Printf("steps         %d (%d tasks)\n", len(wf.GetSteps()), taskSteps)
	return ratio
}

// clusterYAML is the apply's document: node-1 as the control plane, the rest workers.
func clusterYAML(cfg Config) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata: {name: applyload}\nspec:\n  kubernetesVersion: v1.33.13\n  concurrency: %d\n", cfg.Concurrency)
	if cfg.Provider != "" {
		fmt.Fprintf(&b, "  network: {provider: %s}\n", cfg.Provider)
	}
	b.WriteString("  nodes:\n  - {name: node-1, role: control-plane}\n")
	for i := 2; i <= cfg.Nodes; i++ {
		fmt.Fprintf(&b, "  - {name: node-%d, role: worker}\n", i)
	}
	return []byte(b.String())
}

// follow polls the workflow's header (ListWorkflows: no steps, so cheap) until it ends, and
// reports progress on stderr. It gives up after cfg.Timeout, or when the header has not
// changed for cfg.Stall (the engine writes it on every step change), describing the
// workflow so the stall can be read.
func follow(ctx context.Context, wfAPI apiv1.WorkflowServiceClient, id string, cfg Config) (*apiv1.Workflow, error) {
	deadline := time.Now().Add(cfg.Timeout)
	var lastUpdated time.Time
	lastChange, lastReport := time.Now(), time.Now()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := wfAPI.ListWorkflows(rctx, &apiv1.ListWorkflowsRequest{})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list workflows: %w", err)
		}
		var hdr *apiv1.Workflow
		for _, w := range resp.GetWorkflows() {
			if w.GetId() == id {
				hdr = w
			}
		}
		if hdr == nil {
			return nil, fmt.Errorf("workflow %s is not listed", id)
		}
		switch hdr.GetState() {
		case apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED, apiv1.WorkflowState_WORKFLOW_STATE_FAILED, apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED:
			return hdr, nil
		}
		if u := hdr.GetUpdated().AsTime(); !u.Equal(lastUpdated) {
			lastUpdated, lastChange = u, time.Now()
		}
		now := time.Now()
		if now.Sub(lastReport) >= 10*time.Second {
			lastReport = now
			joined := -1
			if c, err := wfAPI.GetCluster(ctx, &apiv1.GetClusterRequest{}); err == nil {
				joined = len(c.GetCluster().GetNodes())
			}
			fmt.Fprintf(os.Stderr, "applyload: %s running for %v, %d of %d nodes in the cluster record\n",
				id, now.Sub(hdr.GetCreated().AsTime()).Round(time.Second), max(joined, 0), cfg.Nodes)
		}
		stalled := now.Sub(lastChange) > cfg.Stall
		if stalled || now.After(deadline) {
			why := fmt.Sprintf("did not end within %v", cfg.Timeout)
			if stalled {
				why = fmt.Sprintf("has not changed for %v", cfg.Stall)
			}
			if full, err := wfAPI.GetWorkflow(ctx, &apiv1.GetWorkflowRequest{Id: id}); err == nil {
				describe(os.Stdout, full.GetWorkflow())
			}
			return nil, fmt.Errorf("workflow %s %s", id, why)
		}
		if !loadutil.Wait(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

func report(cfg Config, wf *apiv1.Workflow, observed time.Duration, peakMiB, cpuSeconds float64) (ratio, msPerStep float64) {
	wall := wf.GetUpdated().AsTime().Sub(wf.GetCreated().AsTime())
	ideal, longest, err := idealSchedule(wf.GetSteps(), cfg.Concurrency, cfg.TaskTime)
	if err != nil {
		fmt.Printf("ideal         cannot be computed: %v\n", err)
	}
	ratio = math.Inf(1)
	if ideal > 0 {
		ratio = wall.Seconds() / ideal.Seconds()
	}
	// run: a task step's dispatch to the engine recording its result: T plus the round trip
	// through the store, the dispatcher and the agent, plus the engine noticing. (A step's
	// finished time is the engine pass that saw the result, which is also the pass that
	// dispatches the next step, so there is no separate gap to measure between steps.)
	// lane: a worker lane's first dispatch to its record step, against its 9 tasks.
	var run, runCP, runOther, lane []time.Duration
	retried, taskSteps := 0, 0
	first := map[string]time.Time{}
	for _, s := range wf.GetSteps() {
		if s.GetAttempts() > 1 {
			retried++
		}
		if st := s.GetStarted().AsTime(); s.GetTaskId() != "" && (first[s.GetLane()].IsZero() || st.Before(first[s.GetLane()])) {
			first[s.GetLane()] = st
		}
		if s.GetTaskId() != "" {
			taskSteps++
			d := s.GetFinished().AsTime().Sub(s.GetStarted().AsTime())
			run = append(run, d)
			if s.GetNode() == "node-1" {
				runCP = append(runCP, d)
			} else {
				runOther = append(runOther, d)
			}
		}
	}
	for _, s := range wf.GetSteps() {
		if s.GetAction() == "record-node" {
			lane = append(lane, s.GetFinished().AsTime().Sub(first[s.GetLane()]))
		}
	}
	dist := distribution
	fmt.Printf("nodes         %d (node-1 control plane, %d workers)\n", cfg.Nodes, cfg.Nodes-1)
	fmt.Printf("concurrency   %d lanes\n", cfg.Concurrency)
	fmt.Printf("task time T   %v\n", cfg.TaskTime)
	fmt.Printf("wall          %v (workflow created to succeeded; %v as the client saw it)\n", wall.Round(time.Millisecond), observed.Round(time.Millisecond))
	fmt.Printf("ideal         %v = %d T: the plan's own steps with nothing but their tasks costing (each T), started\n", ideal, int(ideal/max(cfg.TaskTime, 1)))
	fmt.Printf("              in plan order with at most %d lanes in flight (the engine's admission); longest chain %d tasks\n", cfg.Concurrency, longest)
	msPerStep = 1000 * cpuSeconds / float64(max(1, len(wf.GetSteps())))
	fmt.Printf("ratio         %.2f (wall / ideal)\n", ratio)
	fmt.Printf("controller    peak RSS %.1f MiB, %.1f CPU-seconds during the apply, %.2f ms per step\n", peakMiB, cpuSeconds, msPerStep)
	fmt.Printf("steps         %d (%d tasks), %d retried\n", len(wf.GetSteps()), taskSteps, retried)
	fmt.Printf("  task step, dispatched to result recorded: %s (T = %v)\n", dist(run), cfg.TaskTime)
	fmt.Printf("    on node-1 (%d: tokens, registered, ready, token deletes): %s\n", len(runCP), dist(runCP))
	fmt.Printf("    on the other nodes (%d):                              %s\n", len(runOther), dist(runOther))
	fmt.Printf("  worker lane, first dispatch to recorded:  %s (9 T = %v: 4 preparation tasks, token, join, registered, network, ready)\n", dist(lane), 9*cfg.TaskTime)
	phases(wf)
	return ratio, msPerStep
}

// phases prints, per kind of step (the part of its name after the node), how many there
// are and when the first started and the last finished, from the workflow's creation: where
// the wall time went.
func phases(wf *apiv1.Workflow) {
	type phase struct {
		n           int
		first, last time.Duration
	}
	t0 := wf.GetCreated().AsTime()
	by := map[string]*phase{}
	var order []string
	for _, s := range wf.GetSteps() {
		_, what, _ := strings.Cut(s.GetName(), "/")
		p := by[what]
		if p == nil {
			p = &phase{first: time.Duration(math.MaxInt64)}
			by[what] = p
			order = append(order, what)
		}
		p.n++
		if s.GetStarted() != nil {
			p.first = min(p.first, s.GetStarted().AsTime().Sub(t0))
		}
		if s.GetFinished() != nil {
			p.last = max(p.last, s.GetFinished().AsTime().Sub(t0))
		}
	}
	fmt.Printf("  steps by kind: count, first started, last finished (from the workflow's creation)\n")
	for _, what := range order {
		p := by[what]
		first := "-"
		if p.first != time.Duration(math.MaxInt64) {
			first = p.first.Round(time.Millisecond).String()
		}
		fmt.Printf("    %-16s %5d  %9s  %9v\n", what, p.n, first, p.last.Round(time.Millisecond))
	}
}

// describe prints what deckctl workflow describe would show of a workflow that did not
// succeed: its error and every step that is not done or did not succeed, grouped.
func describe(w *os.File, wf *apiv1.Workflow) {
	fmt.Fprintf(w, "workflow %s: %s", wf.GetId(), wf.GetState())
	if wf.GetFailedStep() != "" {
		fmt.Fprintf(w, ", failed step %s", wf.GetFailedStep())
	}
	if e := wf.GetError(); e != nil {
		fmt.Fprintf(w, ": %s: %s (hint: %s)", e.GetReason(), e.GetMessage(), e.GetHint())
	}
	fmt.Fprintln(w)
	count := map[string]int{}
	var odd []*apiv1.Step
	for _, s := range wf.GetSteps() {
		count[s.GetState().String()]++
		if s.GetState() != apiv1.StepState_STEP_STATE_SUCCEEDED {
			odd = append(odd, s)
		}
	}
	fmt.Fprintf(w, "steps by state: %v\n", count)
	for i, s := range odd {
		if i == 40 {
			fmt.Fprintf(w, "... and %d more steps not succeeded\n", len(odd)-i)
			break
		}
		fmt.Fprintf(w, "  %-28s %-20s node=%s attempts=%d/%d task=%s", s.GetName(), s.GetState(), s.GetNode(), s.GetAttempts(), s.GetMaxAttempts(), s.GetTaskId())
		if e := s.GetError(); e != nil {
			fmt.Fprintf(w, " error=%s: %s", e.GetReason(), e.GetMessage())
		}
		fmt.Fprintln(w)
	}
}

// runJoins records a cluster of each size of cfg.JoinInto (its own controller, an apply
// whose tasks take cfg.RecordTaskTime: the store then holds what it holds after a real
// apply, the cluster record, the finished workflow and its task records), then joins one
// more worker the way deckctl join NODE does, every task taking cfg.TaskTime, and counts
// the tasks each host ran during the join.
func runJoins(cfg Config) error {
	type result struct {
		size            int
		wall            time.Duration
		steps           int
		joiner, cp      int64
		others, touched int64
		cpu             float64
	}
	var results []result
	for _, size := range cfg.JoinInto {
		names := make([]string, size+1)
		for i := range names {
			names[i] = fmt.Sprintf("node-%d", i+1)
		}
		rc := cfg
		rc.Nodes, rc.Concurrency, rc.TaskTime = size, min(size, 1000), cfg.RecordTaskTime
		c, err := start(rc, names)
		if err != nil {
			return err
		}
		r, err := func() (result, error) {
			defer c.Stop()
			wfAPI := apiv1.NewWorkflowServiceClient(c.Admin)
			t0 := time.Now()
			created, err := wfAPI.CreateWorkflow(c.Ctx, &apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{
				Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: clusterYAML(rc)}}}})
			if err != nil {
				return result{}, fmt.Errorf("create the apply of %d nodes: %w", size, err)
			}
			if hdr, err := follow(c.Ctx, wfAPI, created.GetWorkflow().GetId(), rc); err != nil {
				return result{}, err
			} else if hdr.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
				return result{}, fmt.Errorf("the apply of %d nodes ended %s", size, hdr.GetState())
			}
			fmt.Fprintf(os.Stderr, "applyload: %d-node cluster recorded in %v\n", size, time.Since(t0).Round(time.Millisecond))

			before := make([]int64, len(c.Agents))
			for i, a := range c.Agents {
				a.SetTaskTime(cfg.TaskTime)
				before[i] = a.Started()
			}
			joiner := names[size]
			cpu0 := loadutil.CPUTicks(c.PID)
			// What deckctl join NODE sends.
			created, err = wfAPI.CreateWorkflow(c.Ctx, &apiv1.CreateWorkflowRequest{Spec: &apiv1.WorkflowSpec{
				Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: joiner}}}})
			if err != nil {
				return result{}, fmt.Errorf("create the join of %s: %w", joiner, err)
			}
			id := created.GetWorkflow().GetId()
			hdr, err := follow(c.Ctx, wfAPI, id, cfg)
			cpu := float64(loadutil.CPUTicks(c.PID)-cpu0) / 100
			if err != nil {
				return result{}, err
			}
			full, err := wfAPI.GetWorkflow(c.Ctx, &apiv1.GetWorkflowRequest{Id: id})
			if err != nil {
				return result{}, fmt.Errorf("get workflow %s: %w", id, err)
			}
			if hdr.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
				describe(os.Stdout, full.GetWorkflow())
				return result{}, fmt.Errorf("the join of %s ended %s", joiner, hdr.GetState())
			}
			wf := full.GetWorkflow()
			fmt.Printf("the join into %d nodes:\n", size)
			phases(wf)
			if err := breakdown(c.Ctx, apiv1.NewTaskServiceClient(c.Admin), wf); err != nil {
				return result{}, err
			}
			r := result{size: size, wall: wf.GetUpdated().AsTime().Sub(wf.GetCreated().AsTime()), steps: len(wf.GetSteps()), cpu: cpu}
			for i, a := range c.Agents {
				n := a.Started() - before[i]
				switch {
				case a.Name == joiner:
					r.joiner = n
				case a.Name == "node-1":
					r.cp = n
				case n > 0:
					r.others += n
					r.touched++
				}
			}
			return r, nil
		}()
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	provider := cfg.Provider
	if provider == "" {
		provider = "bridge (the default)"
	}
	fmt.Printf("join of one worker (deckctl join NODE) into a recorded cluster, pod network %s, task time T %v\n", provider, cfg.TaskTime)
	fmt.Printf("  %-13s %10s %6s %14s %22s %24s %14s\n", "cluster", "wall", "steps", "joining node", "control plane node-1", "other hosts (tasks)", "controller CPU")
	for _, r := range results {
		fmt.Printf("  %-13s %10v %6d %14d %22d %24s %13.2fs\n", fmt.Sprintf("%d nodes", r.size), r.wall.Round(time.Millisecond), r.steps, r.joiner, r.cp,
			fmt.Sprintf("%d hosts (%d)", r.touched, r.others), r.cpu)
	}
	if len(results) > 1 && results[len(results)-1].wall > 0 {
		last := results[len(results)-1]
		for _, r := range results[:len(results)-1] {
			fmt.Printf("  ratio         %.2f (the join into %d nodes over the join into %d)\n", r.wall.Seconds()/last.wall.Seconds(), r.size, last.size)
		}
	}
	return nil
}

// loadAvg is the machine's 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// breakdown splits a task step's time, from the pass that dispatched it to the pass that
// recorded its result, into the part before the agent had it (the pass's write, the
// dispatcher, the session), the agent's run and the part after (the session's write of the
// result, the engine noticing and its pass), from the agent's own times in each task's
// result (the simulated agents run on the same clock).
func breakdown(ctx context.Context, tasksAPI apiv1.TaskServiceClient, wf *apiv1.Workflow) error {
	results := map[string]*taskv1.TaskResult{}
	for page := ""; ; {
		resp, err := tasksAPI.ListTasks(ctx, &apiv1.ListTasksRequest{WorkflowId: wf.GetId(), PageSize: 1000, PageToken: page})
		if err != nil {
			return err
		}
		for _, r := range resp.GetTasks() {
			results[r.GetTask().GetId()] = r.GetResult()
		}
		if page = resp.GetNextPageToken(); page == "" {
			break
		}
	}
	var before, during, after []time.Duration
	for _, s := range wf.GetSteps() {
		res := results[s.GetTaskId()]
		if s.GetTaskId() == "" || res.GetStarted() == nil || res.GetFinished() == nil {
			continue
		}
		before = append(before, res.GetStarted().AsTime().Sub(s.GetStarted().AsTime()))
		during = append(during, res.GetFinished().AsTime().Sub(res.GetStarted().AsTime()))
		after = append(after, s.GetFinished().AsTime().Sub(res.GetFinished().AsTime()))
	}
	fmt.Printf("  task step, where its time went (%d steps):\n", len(before))
	fmt.Printf("    dispatching pass to the agent having it:  %s\n", distribution(before))
	fmt.Printf("    the agent's run:                          %s\n", distribution(during))
	fmt.Printf("    its result to the pass that recorded it:  %s\n", distribution(after))
	return nil
}

// distribution is p50, p99 and max of ds (sorted in place).
func distribution(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration {
		return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(time.Millisecond)
	}
	return fmt.Sprintf("p50 %v, p99 %v, max %v", at(0.5), at(0.99), at(1))
}

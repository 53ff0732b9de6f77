package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/client"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/scripts/internal/loadutil"
)

// workload is what runs through the kills: simulated agents (loadutil.SimAgent) on nodes
// sim-1..sim-N, each running dry-run init workflows back to back (one at a time: a workflow
// holds its node), every task taking the task time; and, during each quiet watch only,
// token creates at a fixed rate. A poller lists the workflows through the API (the client
// package, failing over as any client does) every pollEvery, which both tells the node loops
// when their workflow ended and finds, after a kill, the first engine pass of the new
// leader: a workflow whose header the engine stamped after the kill (it stamps the header
// in every pass that changes a step, with the leader's clock; the tool runs on the same
// host, and the old leader is dead by then).
type workload struct {
	api      *client.Client
	nodes    []string
	taskTime time.Duration

	mu      sync.Mutex
	states  map[string]apiv1.WorkflowState
	tasks   map[string]int    // task steps per workflow, from its creation
	wake    chan struct{}     // closed after each poll that answered
	since   time.Time         // armed: look for a pass stamped after this
	seenAt  time.Time         // when the poller first saw one
	stamp   time.Time         // its stamp
	done    map[string]bool   // workflows counted as ended
	ended   map[string]int    // by final state name
	taskSum int               // task steps of the workflows that succeeded
	errs    map[string]string // create errors by node, the last one
	failure string            // the first failed workflow, described

	tokensOK, tokensFailed atomic.Int64
}

const pollEvery = 50 * time.Millisecond

// startWorkload connects the API client and, with nodes, enrolls the simulated agents
// through addrs[0], connects them round the controllers, waits until every node is Ready
// and the first workflows succeed, and keeps the stream going until ctx ends.
func startWorkload(ctx context.Context, adminFile string, addrs []string, nodes int, taskTime time.Duration) (*workload, error) {
	api, err := client.New(ctx, client.Options{ConfigFile: adminFile, Controllers: addrs, NoRefresh: true})
	if err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); _ = api.Close() }()
	w := &workload{api: api, taskTime: taskTime, states: map[string]apiv1.WorkflowState{}, tasks: map[string]int{},
		wake: make(chan struct{}), done: map[string]bool{}, ended: map[string]int{}, errs: map[string]string{}}
	if nodes == 0 {
		return w, nil
	}
	for i := 1; i <= nodes; i++ {
		w.nodes = append(w.nodes, fmt.Sprintf("sim-%d", i))
	}
	tok, err := api.Tokens().CreateToken(ctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(time.Hour), Usages: uint32(nodes), Description: "failoverload simulated agents"})
	if err != nil {
		return nil, fmt.Errorf("agent token: %w", err)
	}
	agents, err := loadutil.EnrollSimAgents(ctx, addrs[0], tok.GetSecret(), tok.GetCaCertHash(), w.nodes, taskTime)
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		go a.Run(ctx, addrs)
	}
	if err := loadutil.Poll(60*time.Second, func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := api.Nodes().ListNodes(rctx, &apiv1.ListNodesRequest{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range resp.GetNodes() {
			if n.GetState() == apiv1.NodeState_NODE_STATE_READY {
				ready++
			}
		}
		if ready < nodes {
			return fmt.Errorf("%d of %d simulated nodes Ready", ready, nodes)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	go w.poll(ctx)
	for _, n := range w.nodes {
		go w.stream(ctx, n)
	}
	if err := loadutil.Poll(60*time.Second, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.failure != "" {
			return errors.New(w.failure)
		}
		if w.ended["SUCCEEDED"] < nodes {
			return fmt.Errorf("%d workflows succeeded, %v; create errors: %v", w.ended["SUCCEEDED"], w.ended, w.errs)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("the workflow stream does not run: %w", err)
	}
	return w, nil
}

func initSpec(node string) *apiv1.WorkflowSpec {
	return &apiv1.WorkflowSpec{DryRun: true, Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{
		Node: node, Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}}
}

// stream runs dry-run inits on node one after another until ctx ends. Each is created
// under its own ID, so a create that a failover interrupted is sent again safely.
func (w *workload) stream(ctx context.Context, node string) {
	for seq := 1; ctx.Err() == nil; seq++ {
		id := fmt.Sprintf("wf-%s-%d", node, seq)
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := w.api.Workflows().CreateWorkflow(rctx, &apiv1.CreateWorkflowRequest{Id: id, Spec: initSpec(node)})
			cancel()
			if err == nil {
				n := 0
				for _, s := range resp.GetWorkflow().GetSteps() {
					if s.GetTask() != nil {
						n++
					}
				}
				w.mu.Lock()
				w.tasks[id] = n
				w.mu.Unlock()
				break
			}
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			w.errs[node] = status.Convert(err).Message()
			w.mu.Unlock()
			if !loadutil.Wait(ctx, 100*time.Millisecond) {
				return
			}
		}
		// The poller's page holds the newest workflows; one that runs for long (it would
		// drop off the page) is read on its own, and reported.
		check := time.Now().Add(30 * time.Second)
		for {
			w.mu.Lock()
			st, wake := w.states[id], w.wake
			w.mu.Unlock()
			if st == apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED || st == apiv1.WorkflowState_WORKFLOW_STATE_FAILED || st == apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED {
				break
			}
			if time.Now().After(check) {
				check = time.Now().Add(30 * time.Second)
				w.slow(ctx, id)
			}
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
		}
	}
}

// poll lists the newest workflows every pollEvery until ctx ends.
func (w *workload) poll(ctx context.Context) {
	for loadutil.Wait(ctx, pollEvery) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := w.api.Workflows().ListWorkflows(rctx, &apiv1.ListWorkflowsRequest{PageSize: int32(4 * len(w.nodes))})
		cancel()
		if err != nil {
			continue
		}
		at := time.Now()
		var failed []string
		w.mu.Lock()
		for _, wf := range resp.GetWorkflows() {
			updated, created := wf.GetUpdated().AsTime(), wf.GetCreated().AsTime()
			if !w.since.IsZero() && w.seenAt.IsZero() && updated.After(created) && updated.After(w.since) {
				w.seenAt, w.stamp = at, updated
			}
			if w.noteLocked(wf) {
				failed = append(failed, wf.GetId())
			}
		}
		close(w.wake)
		w.wake = make(chan struct{})
		w.mu.Unlock()
		for _, id := range failed {
			w.describe(ctx, id)
		}
	}
}

// noteLocked records wf's state and counts it once when it ended; true when it ended
// without succeeding. w.mu is held.
func (w *workload) noteLocked(wf *apiv1.Workflow) bool {
	id, s := wf.GetId(), wf.GetState()
	w.states[id] = s
	if s == apiv1.WorkflowState_WORKFLOW_STATE_RUNNING || s == apiv1.WorkflowState_WORKFLOW_STATE_PENDING || w.done[id] {
		return false
	}
	w.done[id] = true
	w.ended[stateName(s)]++
	if s == apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED {
		w.taskSum += w.tasks[id]
		return false
	}
	return true
}

func stateName(s apiv1.WorkflowState) string {
	return s.String()[len("WORKFLOW_STATE_"):]
}

// describe keeps the first failed workflow's error and failed step for the report, and
// prints every failure on stderr.
func (w *workload) describe(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := w.api.Workflows().GetWorkflow(rctx, &apiv1.GetWorkflowRequest{Id: id})
	msg := fmt.Sprintf("workflow %s did not succeed", id)
	if err == nil {
		wf := resp.GetWorkflow()
		msg = fmt.Sprintf("workflow %s %s, failed step %s: %s: %s", id, stateName(wf.GetState()), wf.GetFailedStep(), wf.GetError().GetReason(), wf.GetError().GetMessage())
	}
	fmt.Fprintln(os.Stderr, "failoverload:", msg)
	w.mu.Lock()
	if w.failure == "" {
		w.failure = msg
	}
	w.mu.Unlock()
}

// slow reads a workflow that runs for long, records its state and prints the steps that
// have not ended.
func (w *workload) slow(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := w.api.Workflows().GetWorkflow(rctx, &apiv1.GetWorkflowRequest{Id: id})
	if err != nil {
		return
	}
	wf := resp.GetWorkflow()
	w.mu.Lock()
	failed := w.noteLocked(wf)
	w.mu.Unlock()
	if failed {
		w.describe(ctx, id)
	}
	var open []string
	for _, s := range wf.GetSteps() {
		if st := s.GetState(); st == apiv1.StepState_STEP_STATE_PENDING || st == apiv1.StepState_STEP_STATE_RUNNING {
			open = append(open, fmt.Sprintf("%s %s task=%s", s.GetName(), s.GetState(), s.GetTaskId()))
		}
	}
	fmt.Fprintf(os.Stderr, "failoverload: workflow %s %s after %v; steps not ended: %v\n", id, stateName(wf.GetState()),
		time.Since(wf.GetCreated().AsTime()).Round(time.Second), open)
}

// arm starts looking for the first engine pass stamped after t.
func (w *workload) arm(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since, w.seenAt, w.stamp = t, time.Time{}, time.Time{}
}

// moved is when the poller first saw a pass stamped after the armed time, and its stamp.
func (w *workload) moved() (seen, stamp time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seenAt, w.stamp, !w.seenAt.IsZero()
}

// counts is the workflows ended by final state, and the task steps of those that succeeded.
func (w *workload) counts() (map[string]int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]int{}
	for k, v := range w.ended {
		m[k] = v
	}
	return m, w.taskSum
}

// firstFailure describes the first workflow that did not succeed, "" when none.
func (w *workload) firstFailure() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failure
}

// tokens creates agent tokens at rate per second until ctx ends, at most 16 in flight (a
// tick with 16 in flight is skipped and counted as failed).
func (w *workload) tokens(ctx context.Context, rate float64) {
	if rate <= 0 {
		return
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			w.tokensFailed.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := w.api.Tokens().CreateToken(rctx, &apiv1.CreateTokenRequest{Ttl: durationpb.New(10 * time.Minute), Usages: 1, Description: "failoverload write load"})
			switch {
			case err == nil:
				w.tokensOK.Add(1)
			case ctx.Err() != nil && status.Code(err) == codes.Canceled:
			default:
				w.tokensFailed.Add(1)
			}
		}()
	}
}

package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Dry-run stand-ins for outputs of steps that did not really run.
var placeholders = map[string]string{
	"token":           "abcdef.0123456789abcdef",
	"ca_cert_hash":    "sha256:" + strings.Repeat("0", 64),
	"certificate_key": strings.Repeat("0", 64),
	"delete_token_id": "abcdef",
	"api_server":      "127.0.0.1:6443",
	"pod_cidr":        "10.244.0.0/24",
}

// maxCreatePerPass bounds the tasks one pass creates, so that its transaction (3
// operations per task) stays within a store's limit (etcd: 128 operations) when many steps
// without a lane (the routes steps of every node) are ready at once.
const maxCreatePerPass = 32

// Engine runs workflows on the leader.
type Engine struct {
	svc *Service
	log *slog.Logger

	// Backoff is the first retry delay; it doubles per attempt up to 30 s.
	Backoff time.Duration
	// Tick is how often every running workflow is looked at even without events (retry
	// backoff, step timeouts, control planes becoming Ready).
	Tick time.Duration
	// Retention bounds the finished task records kept; RetentionEvery is how often the
	// leader deletes those past it.
	Retention      tasks.Retention
	RetentionEvery time.Duration

	fence  store.Compare
	cache  map[string]*loaded
	mu     sync.Mutex
	tasks  map[string]*apiv1.TaskRecord // terminal records of workflow tasks, from the watch
	dirty  chan string
	nodeSt map[string]apiv1.NodeState // per pass
}

// NewEngine returns an engine for svc.
func NewEngine(svc *Service, log *slog.Logger) *Engine {
	return &Engine{svc: svc, log: log, Backoff: 2 * time.Second, Tick: time.Second,
		Retention: tasks.DefaultRetention(), RetentionEvery: time.Minute}
}

// retain deletes finished task records past the retention every RetentionEvery while this
// replica leads; a task of a workflow that has not finished is kept.
func (e *Engine) retain(ctx context.Context) {
	for backoff.Sleep(ctx, e.RetentionEvery) {
		kvs, _, err := e.svc.st.List(ctx, Prefix)
		if err != nil {
			continue
		}
		active := map[string]bool{}
		for _, kv := range kvs {
			var wf apiv1.Workflow
			if proto.Unmarshal(kv.Value, &wf) != nil || !Terminal(wf.GetState()) {
				active[strings.TrimPrefix(kv.Key, Prefix)] = true
			}
		}
		n, err := e.svc.tasks.Sweep(ctx, e.fence, e.Retention, func(r *apiv1.TaskRecord) bool { return active[r.GetTask().GetWorkflowId()] })
		if n > 0 {
			e.log.Info("deleted finished task records past the retention", "deleted", n, "retention_period", e.Retention.Period, "retention_count", e.Retention.Count)
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrFenced) {
			e.log.Warn("task retention", "err", err)
		}
	}
}

var errFenced = errors.New("leadership lost")

// Run drives every running workflow until ctx ends or leadership is lost. fence is the
// leadership's compare, added to every write.
func (e *Engine) Run(ctx context.Context, fence store.Compare) {
	e.fence = fence
	e.cache = map[string]*loaded{}
	e.tasks = map[string]*apiv1.TaskRecord{}
	e.dirty = make(chan string, 8192)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go e.follow(wctx, tasks.Prefix)
	go e.follow(wctx, Prefix)
	go e.retain(wctx)
	tick := time.NewTicker(e.Tick)
	defer tick.Stop()
	all := true
	for ctx.Err() == nil {
		due := map[string]bool{}
		if all {
			ids, err := e.running(ctx)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("list workflows", "err", err)
				}
			}
			for _, id := range ids {
				due[id] = true
			}
			all = false
		} else {
			select {
			case <-ctx.Done():
				return
			case id := <-e.dirty:
				due[id] = true
			case <-tick.C:
				all = true
				continue
			}
		}
		// Take everything queued so one pass handles a burst of events.
		for more := true; more; {
			select {
			case id := <-e.dirty:
				due[id] = true
			default:
				more = false
			}
		}
		e.nodeSt = nil
		for id := range due {
			if id == "" {
				all = true
				continue
			}
			if err := e.reconcile(ctx, id); err != nil {
				if errors.Is(err, errFenced) || errors.Is(err, store.ErrFenced) {
					e.log.Info("workflow engine stopping: leadership lost")
					return
				}
				if ctx.Err() == nil {
					e.log.Warn("workflow step", "workflow", id, "err", err)
				}
			}
		}
	}
}

// follow turns store changes into dirty workflow IDs; "" asks for a full pass.
func (e *Engine) follow(ctx context.Context, prefix string) {
	store.Follow(ctx, e.svc.st, prefix, store.Follower{
		// Each (re)start of the watch may have missed changes: a full pass.
		NoKeys: true,
		Listed: func([]*store.KV) { e.mark("") },
		Event: func(ev store.Event) {
			if ev.Type != store.EventPut {
				return
			}
			if prefix == tasks.Prefix {
				rec, err := tasks.Decode(ev.KV)
				if err != nil || rec.GetTask().GetWorkflowId() == "" {
					return
				}
				if tasks.Terminal(rec.GetState()) {
					e.putTask(rec)
					e.mark(rec.GetTask().GetWorkflowId())
				}
				return
			}
			e.mark(strings.TrimPrefix(ev.KV.Key, Prefix))
		},
	})
}

func (e *Engine) mark(id string) {
	select {
	case e.dirty <- id:
	default:
	}
}

// The task cache is written by follow and read by reconcile.
func (e *Engine) putTask(rec *apiv1.TaskRecord) {
	e.mu.Lock()
	e.tasks[rec.GetTask().GetId()] = rec
	e.mu.Unlock()
}

func (e *Engine) cachedTask(id string) *apiv1.TaskRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tasks[id]
}

func (e *Engine) forgetTasks(wf string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.tasks {
		if strings.HasPrefix(id, wf+".") {
			delete(e.tasks, id)
		}
	}
}

// running lists the IDs of workflows that are not finished.
func (e *Engine) running(ctx context.Context) ([]string, error) {
	kvs, _, err := e.svc.st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, kv := range kvs {
		var wf apiv1.Workflow
		if proto.Unmarshal(kv.Value, &wf) == nil && !Terminal(wf.GetState()) {
			ids = append(ids, wf.GetId())
		} else {
			delete(e.cache, wf.GetId())
		}
	}
	return ids, nil
}

func (e *Engine) nodeState(ctx context.Context, name string) apiv1.NodeState {
	if e.nodeSt == nil {
		e.nodeSt = map[string]apiv1.NodeState{}
		if ns, err := e.svc.nodes.List(ctx, store.Stale()); err == nil {
			for _, n := range ns {
				e.nodeSt[n.GetName()] = n.GetState()
			}
		}
	}
	return e.nodeSt[name]
}

func (e *Engine) task(ctx context.Context, id string) (*apiv1.TaskRecord, error) {
	if rec := e.cachedTask(id); rec != nil {
		return rec, nil
	}
	rec, _, err := e.svc.tasks.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if tasks.Terminal(rec.GetState()) {
		e.putTask(rec)
	}
	return rec, nil
}

func (e *Engine) backoff(attempts uint32) time.Duration { return backoffFor(e.Backoff, attempts) }

// satisfied says whether step s may start given its dependencies; never means it cannot
// start in this run of the workflow.
func satisfied(l *loaded, s *apiv1.Step) (ok, never bool) {
	ok = true
	for _, d := range s.GetDependsOn() {
		ds := l.step(d)
		if ds == nil {
			return false, true
		}
		st := ds.GetState()
		if s.GetAlways() {
			if !stepDone(st) {
				ok = false
			}
			continue
		}
		switch {
		case st == apiv1.StepState_STEP_STATE_SUCCEEDED, st == apiv1.StepState_STEP_STATE_SKIPPED,
			st == apiv1.StepState_STEP_STATE_FAILED && ds.GetContinueOnFailure():
		case st == apiv1.StepState_STEP_STATE_FAILED, st == apiv1.StepState_STEP_STATE_CANCELLED:
			return false, true
		default:
			ok = false
		}
	}
	return ok, false
}

// reconcile moves one workflow forward and writes what changed in one fenced transaction.
func (e *Engine) reconcile(ctx context.Context, id string) (err error) {
	// A pass changes the cached steps in place; one that ends in an error wrote none of it,
	// so the cache must not keep it (a timed-out step whose cancel failed would never be
	// cancelled again, a settled step's successors would start while the store says running).
	defer func() {
		if err != nil {
			delete(e.cache, id)
		}
	}()
	l := e.cache[id]
	if l == nil {
		var err error
		if l, err = load(ctx, e.svc.st, id); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		e.cache[id] = l
	} else if kv, _, err := e.svc.st.Get(ctx, headerKey(id), store.Stale()); err == nil && kv.ModRevision != l.hdrRev {
		// Changed by someone else (cancel, retry): start from the store.
		delete(e.cache, id)
		return e.reconcile(ctx, id)
	}
	wf := l.wf
	if Terminal(wf.GetState()) {
		delete(e.cache, id)
		e.forgetTasks(id)
		return nil
	}
	now := e.svc.now()
	changed := map[int]bool{}
	hdrChanged := false
	dry := wf.GetSpec().GetDryRun()

	// 1. Results of running steps.
	for i, s := range wf.GetSteps() {
		if s.GetState() != apiv1.StepState_STEP_STATE_RUNNING || s.GetAction() != "" {
			continue
		}
		rec, err := e.task(ctx, s.GetTaskId())
		if err == nil && !ownTask(rec, id, s) {
			e.fail(s, now, "TASK_ID_TAKEN", idTakenMessage(rec, id, s), "deckctl workflow retry "+id+" runs the step again under a new task ID")
			changed[i] = true
			continue
		}
		if errors.Is(err, tasks.ErrNotFound) {
			// The step was marked running but its task not created (a failover in
			// between): create it now, under the same ID.
			if err := e.createTask(ctx, wf, s); err != nil {
				e.fail(s, now, "DISPATCH_FAILED", err.Error(), "check that the node is enrolled (deckctl nodes)")
				changed[i] = true
			}
			continue
		}
		if err != nil {
			return err
		}
		switch settle(id, s, rec, now, e.backoff(s.GetAttempts())) {
		case stillRunning:
			continue
		case timedOut:
			if _, err := e.svc.tasks.Cancel(ctx, s.GetTaskId()); err != nil && !errors.Is(err, tasks.ErrNotFound) {
				return err
			}
		}
		changed[i] = true
	}

	// 2. Start the steps that are ready.
	failed := firstFailed(wf) != nil
	adm := newAdmission(wf)
	var create []*apiv1.Step
	capped := false
	rendered := map[string]*taskv1.TaskSpec{}
	for i, s := range wf.GetSteps() {
		if !eligible(l, s, failed, now) || !adm.admits(s) {
			continue
		}
		if s.GetAction() != "" {
			if dry {
				s.State = apiv1.StepState_STEP_STATE_SKIPPED
			} else if err := e.act(ctx, wf, l, s); err != nil {
				if errors.Is(err, store.ErrFenced) {
					return err
				}
				e.fail(s, now, "ACTION_FAILED", err.Error(), "deckctl workflow retry "+id)
			} else {
				s.State = apiv1.StepState_STEP_STATE_SUCCEEDED
				s.Started, s.Finished = timestamppb.New(now), timestamppb.New(now)
			}
			changed[i] = true
			continue
		}
		if len(create) >= maxCreatePerPass {
			capped = true // the next pass starts the rest
			continue
		}
		node, wait := e.resolveNode(ctx, l, s)
		if node == "" {
			if dry {
				s.State = apiv1.StepState_STEP_STATE_SKIPPED
				s.Error = &taskv1.TaskError{Reason: "DRY_RUN", Message: wait}
				changed[i] = true
			} else if s.GetError().GetMessage() != wait {
				s.Error = &taskv1.TaskError{Reason: "WAITING", Message: wait, Hint: "deckctl nodes shows which control planes are Ready"}
				changed[i] = true
			}
			continue
		}
		t, err := e.render(ctx, l, s, dry)
		var skip *skipError
		if errors.As(err, &skip) {
			s.State, s.Finished = apiv1.StepState_STEP_STATE_SKIPPED, timestamppb.New(now)
			s.Error = &taskv1.TaskError{Reason: "NOTHING_TO_DO", Message: skip.why}
			changed[i] = true
			continue
		}
		if err != nil {
			e.fail(s, now, "INPUT_MISSING", err.Error(), "deckctl workflow retry "+id+" runs the steps that produce it again")
			changed[i] = true
			continue
		}
		// The rendered spec (it may hold a token) goes only into the task record; the
		// step keeps its template, so secrets never show in the workflow.
		tid := taskID(id, s.GetName(), s.GetAttempts()+1)
		if rec, _, err := e.svc.tasks.Get(ctx, tid); err == nil {
			// Never overwrite or adopt a record this engine did not create: its result
			// would become the step's. (Direct tasks cannot take the workflow prefix;
			// this is a record from before that rule, or a bug.)
			s.Attempts++
			s.TaskId = tid
			e.fail(s, now, "TASK_ID_TAKEN", idTakenMessage(rec, id, s), "deckctl workflow retry "+id+" runs the step again under a new task ID")
			changed[i] = true
			continue
		} else if !errors.Is(err, tasks.ErrNotFound) {
			return err
		}
		rendered[s.GetName()] = t
		s.Node = node
		s.Attempts++
		s.TaskId = tid
		s.State = apiv1.StepState_STEP_STATE_RUNNING
		s.Started = timestamppb.New(now)
		s.Finished, s.Error = nil, nil
		changed[i] = true
		create = append(create, s)
		adm.start(s)
	}

	// 3. Is the workflow over?
	if over, state, failedStep, err := outcome(l); over {
		wf.State, wf.FailedStep, wf.Error = state, failedStep, err
		hdrChanged = true
	}
	if len(changed) == 0 && !hdrChanged {
		return nil
	}
	e.log.Debug("workflow pass", "workflow", id, "changed_steps", len(changed), "state", wf.GetState())
	wf.Updated = timestamppb.New(now)
	idx := make([]int, 0, len(changed))
	for i := range changed {
		idx = append(idx, i)
	}
	ops, err := putOps(wf, idx)
	if err != nil {
		return err
	}
	if Terminal(wf.GetState()) {
		for _, n := range wf.GetNodes() {
			ops = append(ops, store.Delete(lockKey(n)))
		}
	}
	// The tasks are created with their steps, in one write: no step runs without its task,
	// and each task only if its ID is free.
	ifs := []store.Compare{e.fence, store.ModRevisionIs(headerKey(id), l.hdrRev)}
	for _, st := range create {
		t := e.newTask(wf, st)
		t.Spec = rendered[st.GetName()]
		cmp, op, err := tasks.PutNew(t, now)
		if err != nil {
			return err
		}
		ifs = append(ifs, cmp)
		ops = append(ops, op)
	}
	rev, err := e.svc.st.Txn(ctx, store.Txn{If: ifs, Then: ops})
	if errors.Is(err, store.ErrConflict) {
		delete(e.cache, id)
		e.mark(id)
		return nil
	}
	if err != nil {
		delete(e.cache, id)
		return err
	}
	l.hdrRev = rev
	if capped {
		e.mark(id)
	}
	if Terminal(wf.GetState()) {
		e.log.Info("workflow ended", "workflow", id, "kind", Kind(wf.GetSpec()), "state", stateName(wf.GetState()), "failed_step", wf.GetFailedStep())
		delete(e.cache, id)
		e.forgetTasks(id)
	}
	return nil
}

// mayRun returns whether a pending step can still run in this run of the workflow: its
// dependencies have ended the way it needs, or run, or can still run themselves. Once a step
// failed, only clean-up (always) steps run.
func mayRun(l *loaded, failedMode bool) func(*apiv1.Step) bool {
	memo := map[string]bool{}
	var alive func(s *apiv1.Step) bool
	alive = func(s *apiv1.Step) bool {
		if v, ok := memo[s.GetName()]; ok {
			return v
		}
		memo[s.GetName()] = false // a cycle never runs
		if s.GetState() != apiv1.StepState_STEP_STATE_PENDING || (failedMode && !s.GetAlways()) {
			return false
		}
		for _, d := range s.GetDependsOn() {
			ds := l.step(d)
			if ds == nil {
				return false
			}
			st := ds.GetState()
			ok := st == apiv1.StepState_STEP_STATE_RUNNING || alive(ds)
			if s.GetAlways() {
				ok = ok || stepDone(st)
			} else {
				ok = ok || st == apiv1.StepState_STEP_STATE_SUCCEEDED || st == apiv1.StepState_STEP_STATE_SKIPPED ||
					(st == apiv1.StepState_STEP_STATE_FAILED && ds.GetContinueOnFailure())
			}
			if !ok {
				return false
			}
		}
		memo[s.GetName()] = true
		return true
	}
	return alive
}

func firstFailed(wf *apiv1.Workflow) *apiv1.Step {
	for _, s := range wf.GetSteps() {
		if s.GetState() == apiv1.StepState_STEP_STATE_FAILED && !s.GetContinueOnFailure() {
			return s
		}
	}
	return nil
}

func allDone(wf *apiv1.Workflow) bool {
	for _, s := range wf.GetSteps() {
		if !stepDone(s.GetState()) {
			return false
		}
	}
	return true
}

func (e *Engine) fail(s *apiv1.Step, now time.Time, reason, msg, hint string) {
	s.State = apiv1.StepState_STEP_STATE_FAILED
	s.Error = &taskv1.TaskError{Reason: reason, Message: msg, Hint: hint}
	s.Finished = timestamppb.New(now)
}

func publicOutputs(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if tasksecrets.Output(k) { // secret outputs never leave the task record (only writers read them there)
			if k == "token" {
				out["token_id"], _, _ = strings.Cut(v, ".")
			}
			continue
		}
		out[k] = v
	}
	return out
}

func (e *Engine) newTask(wf *apiv1.Workflow, s *apiv1.Step) *taskv1.Task {
	return &taskv1.Task{Id: s.GetTaskId(), Node: s.GetNode(), Spec: s.GetTask(), DryRun: wf.GetSpec().GetDryRun(),
		Timeout: s.GetTimeout(), WorkflowId: wf.GetId(), Step: s.GetName()}
}

// createTask creates a running step's task if it is missing (records written before tasks
// were created with their steps).
func (e *Engine) createTask(ctx context.Context, wf *apiv1.Workflow, s *apiv1.Step) error {
	cmp, op, err := tasks.PutNew(e.newTask(wf, s), e.svc.now())
	if err != nil {
		return err
	}
	_, err = e.svc.st.Txn(ctx, store.Txn{If: []store.Compare{e.fence, cmp}, Then: []store.Op{op}})
	if errors.Is(err, store.ErrConflict) {
		return nil // created meanwhile: the next pass reads it (and checks whose it is)
	}
	return err
}

// ownTask says whether rec is the task this engine created for step s of workflow wf. Only
// the engine sets a task's workflow and step (a direct task names none).
func ownTask(rec *apiv1.TaskRecord, wf string, s *apiv1.Step) bool {
	t := rec.GetTask()
	return t.GetWorkflowId() == wf && t.GetStep() == s.GetName() && t.GetId() == s.GetTaskId()
}

func idTakenMessage(rec *apiv1.TaskRecord, wf string, s *apiv1.Step) string {
	by := "run directly"
	if w := rec.GetTask().GetWorkflowId(); w != "" {
		by = "of workflow " + w + " step " + rec.GetTask().GetStep()
	}
	return fmt.Sprintf("task ID %s of step %s is taken by a task this workflow did not create (%s, on node %s): its result is not the step's",
		s.GetTaskId(), s.GetName(), by, rec.GetTask().GetNode())
}

// resolveNode picks the node a step runs on; "" with a reason when none is available yet.
// It loads the cluster record and node states only when the step needs them (pickNode).
func (e *Engine) resolveNode(ctx context.Context, l *loaded, s *apiv1.Step) (string, string) {
	if n, ok := fixedNode(l, s); ok {
		return n, ""
	}
	if !s.GetAnyControlPlane() && s.GetNodeFrom() == "" {
		return "", "the step names no node"
	}
	cl, _, err := readCluster(ctx, e.svc.st)
	if err != nil {
		return "", err.Error()
	}
	return pickNode(s, cl, func(n string) bool { return e.nodeState(ctx, n) == apiv1.NodeState_NODE_STATE_READY })
}

// skipError: the step has nothing to do (a routes step for a node that left meanwhile).
type skipError struct{ why string }

func (e *skipError) Error() string { return e.why }

// render fills the step's inputs into its task spec from the producing tasks' outputs, and
// a network step's from the cluster's network view as it is now.
func (e *Engine) render(ctx context.Context, l *loaded, s *apiv1.Step, dry bool) (*taskv1.TaskSpec, error) {
	var cl *apiv1.Cluster
	var gen int64
	loadedCluster := false
	outputs := map[string]map[string]string{}
	for _, in := range s.GetInputs() {
		if in.GetStep() == "" {
			// Resolved when the step is dispatched, not when the plan was built: nodes that
			// joined (or left) since, in this workflow or another, are in the list.
			if !loadedCluster {
				kv, rev, err := e.svc.st.Get(ctx, ClusterKey)
				if err == nil {
					cl = &apiv1.Cluster{}
					if err := proto.Unmarshal(kv.Value, cl); err != nil {
						return nil, fmt.Errorf("cluster record: %w", err)
					}
				} else if !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
				gen, loadedCluster = rev, true
			}
			continue
		}
		if p := l.step(in.GetStep()); p != nil && p.GetTaskId() != "" && p.GetState() == apiv1.StepState_STEP_STATE_SUCCEEDED {
			rec, err := e.task(ctx, p.GetTaskId())
			if err != nil {
				return nil, err
			}
			outputs[in.GetStep()] = rec.GetResult().GetOutputs()
		}
	}
	return renderSpec(l, s, cl, gen, outputs, dry)
}

// placeholderPodCIDR stands in, in a dry-run, for the pod CIDR a node has not been given:
// the first /24 of the cluster's pod subnet (kube-controller-manager's default node size),
// or the subnet itself when it is smaller, so the agent's checks pass as they would.
func placeholderPodCIDR(clusterPodSubnet string) string {
	c, err := netip.ParsePrefix(clusterPodSubnet)
	if err != nil || !c.Addr().Is4() {
		return placeholders["pod_cidr"]
	}
	if c.Bits() >= 24 {
		return c.Masked().String()
	}
	return netip.PrefixFrom(c.Masked().Addr(), 24).String()
}

// act runs a controller action: the cluster record changes as nodes come and go.
func (e *Engine) act(ctx context.Context, wf *apiv1.Workflow, l *loaded, s *apiv1.Step) error {
	node := s.GetLane()
	for {
		cl, rev, err := readCluster(ctx, e.svc.st)
		if err != nil {
			return err
		}
		now := timestamppb.New(e.svc.now())
		var next *apiv1.Cluster
		switch s.GetAction() {
		case ActionRecordCluster:
			if cl != nil {
				if clusterNode(cl, node) != nil {
					return nil // recorded before a failover
				}
				return fmt.Errorf("a cluster was recorded meanwhile")
			}
			in := l.step(node + "/init")
			reg := l.step(node + "/registered").GetOutputs()
			next = &apiv1.Cluster{
				Spec: in.GetTask().GetKubeadmInit().GetCluster(), CaCertHash: in.GetOutputs()["ca_cert_hash"],
				Nodes: []*apiv1.ClusterNode{{Name: node, Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Joined: now, WorkflowId: wf.GetId(),
					PodCidr: reg["pod_cidr"], Address: reg["address"]}},
				Created: now, Updated: now,
				Packages: l.step(node + "/packages").GetTask().GetPackages(), Runtime: l.step(node + "/runtime").GetTask().GetRuntime(),
			}
			if next.Packages != nil {
				next.Packages = proto.Clone(next.Packages).(*taskv1.PackagesSpec)
				next.Packages.KubernetesVersion = ""
			}
			if next.Runtime != nil {
				next.Runtime = proto.Clone(next.Runtime).(*taskv1.RuntimeSpec)
				next.Runtime.KubernetesVersion, next.Runtime.Registry, next.Runtime.CgroupDriver = "", nil, ""
			}
		case ActionRecordNode:
			if cl == nil {
				return fmt.Errorf("no cluster is recorded")
			}
			if clusterNode(cl, node) != nil {
				return nil
			}
			next = proto.Clone(cl).(*apiv1.Cluster)
			role := l.step(node + "/join").GetTask().GetKubeadmJoin().GetRole()
			reg := l.step(node + "/registered").GetOutputs()
			next.Nodes = append(next.Nodes, &apiv1.ClusterNode{Name: node, Role: role, Joined: now, WorkflowId: wf.GetId(),
				PodCidr: reg["pod_cidr"], Address: reg["address"]})
			next.Updated = now
		case ActionForgetNode:
			if clusterNode(cl, node) == nil {
				return nil
			}
			next = proto.Clone(cl).(*apiv1.Cluster)
			next.Nodes = nil
			for _, n := range cl.GetNodes() {
				if n.GetName() != node {
					next.Nodes = append(next.Nodes, n)
				}
			}
			next.Updated = now
		default:
			return fmt.Errorf("unknown action %q", s.GetAction())
		}
		var op store.Op
		if len(next.GetNodes()) == 0 {
			op = store.Delete(ClusterKey) // the last node left: no cluster any more
		} else {
			b, err := proto.Marshal(next)
			if err != nil {
				return err
			}
			op = store.Put(ClusterKey, b)
		}
		_, err = e.svc.st.Txn(ctx, store.Txn{If: []store.Compare{e.fence, store.ModRevisionIs(ClusterKey, rev)}, Then: []store.Op{op}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

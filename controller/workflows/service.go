package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/version"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Service creates, reads and changes workflows; any replica serves it.
type Service struct {
	st    store.Store
	nodes *nodes.Registry
	tasks *tasks.Service
	now   func() time.Time
}

// New returns a Service. now may be nil (time.Now).
func New(st store.Store, reg *nodes.Registry, ts *tasks.Service, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, nodes: reg, tasks: ts, now: now}
}

// enrolled are the nodes of the inventory, the cgroup driver each one's facts infer and
// the addresses they list (both absent when it has not reported facts yet).
func (s *Service) enrolled(ctx context.Context) (map[string]bool, map[string]string, map[string]*hostAddrs, error) {
	ns, err := s.nodes.List(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	m := make(map[string]bool, len(ns))
	drivers := map[string]string{}
	addrs := map[string]*hostAddrs{}
	for _, n := range ns {
		m[n.GetName()] = true
		f := n.GetFacts()
		if f == nil {
			continue
		}
		if d := f.GetCgroupDriver(); d != "" {
			drivers[n.GetName()] = d
		}
		addrs[n.GetName()] = &hostAddrs{route: f.GetRouteAddress(), all: f.GetIpAddresses()}
	}
	return m, drivers, addrs, nil
}

func (s *Service) build(ctx context.Context, spec *apiv1.WorkflowSpec) (*plan, error) {
	cl, _, err := readCluster(ctx, s.st)
	if err != nil {
		return nil, err
	}
	en, drivers, addrs, err := s.enrolled(ctx)
	if err != nil {
		return nil, err
	}
	if r := spec.GetEtcdRestore(); r != nil {
		return s.buildRestore(ctx, cl, r)
	}
	var inv upgradeInventory
	if spec.GetUpgrade() != nil {
		if inv, err = s.upgradeInventory(ctx); err != nil {
			return nil, err
		}
	}
	return buildWith(spec, cl, en, drivers, addrs, inv)
}

// upgradeInventory is what an upgrade is decided from besides the cluster record: each
// enrolled node's kubelet and control-plane versions (its facts), whether its agent is
// connected, and the workflow holding it.
func (s *Service) upgradeInventory(ctx context.Context) (upgradeInventory, error) {
	ns, err := s.nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	inv := upgradeInventory{}
	for _, n := range ns {
		f := n.GetFacts()
		u := upgradeNode{Name: n.GetName(), Kubelet: f.GetKubeVersions()["kubelet"], ControlPlaneVersion: f.GetControlPlaneVersion(),
			Connected: n.GetState() == apiv1.NodeState_NODE_STATE_READY, AgentVersion: n.GetAgentVersion(),
			AgentCurrent: n.GetAgentVersion() != "" && version.Same(version.Parse(n.GetAgentVersion()), version.Get())}
		if kv, _, err := s.st.Get(ctx, lockKey(n.GetName())); err == nil {
			u.HeldBy = string(kv.Value)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		inv[n.GetName()] = u
	}
	return inv, nil
}

// Plan returns the steps spec would run, without storing or running anything.
func (s *Service) Plan(ctx context.Context, spec *apiv1.WorkflowSpec) (*apiv1.PlanWorkflowResponse, error) {
	p, err := s.build(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &apiv1.PlanWorkflowResponse{
		Workflow: View(&storagev1.WorkflowRecord{Spec: spec, State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_PENDING, Steps: p.steps, Nodes: p.nodes, Concurrency: p.concurrency}),
		Changes:  p.changes, Notes: p.notes,
	}, nil
}

// Create stores a new workflow and takes its nodes; the leader's engine runs it. A node
// another workflow holds fails the whole request with a *LockedError.
func (s *Service) Create(ctx context.Context, spec *apiv1.WorkflowSpec, by string) (*apiv1.Workflow, error) {
	return s.CreateWithID(ctx, "", spec, by)
}

// CreateWithID is Create under a client-chosen ID (a generated one when id is empty). An ID
// is used once: the same spec again by the same caller returns the recorded workflow (an
// idempotent retry, for example after the controller that took the first request died
// before answering); anything else under a taken ID is ErrExists.
func (s *Service) CreateWithID(ctx context.Context, id string, spec *apiv1.WorkflowSpec, by string) (*apiv1.Workflow, error) {
	return viewed(s.create(ctx, id, spec, by))
}

func (s *Service) create(ctx context.Context, id string, spec *apiv1.WorkflowSpec, by string) (*storagev1.WorkflowRecord, error) {
	if id == "" {
		id = NewID()
	} else {
		if err := ValidateID(id); err != nil {
			return nil, err
		}
		if wf, err := s.recorded(ctx, id, spec, by); !errors.Is(err, ErrNotFound) {
			return wf, err
		}
	}
	p, err := s.build(ctx, spec)
	if err != nil {
		return nil, err
	}
	now := timestamppb.New(s.now())
	wf := &storagev1.WorkflowRecord{Id: id, Spec: spec, State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, Steps: p.steps,
		Created: now, Updated: now, Nodes: p.nodes, Concurrency: p.concurrency, CreatedBy: by, Paused: spec.GetUpgrade().GetPaused()}
	if len(p.steps) == 0 {
		wf.State = storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED
		wf.Nodes = nil
	}
	// The steps first, in small writes (a store such as etcd bounds a transaction's size);
	// nothing reads them before the header exists. Each write holds only while there is no
	// header: a create under the same ID that won meanwhile keeps its steps.
	absent := store.Absent(headerKey(id))
	if err := writeSteps(ctx, s.st, wf, absent); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return s.recorded(ctx, id, spec, by)
		}
		return nil, err
	}
	ops, err := headerOps(wf)
	if err != nil {
		return nil, err
	}
	ifs := []store.Compare{absent}
	for _, n := range wf.GetNodes() {
		ifs = append(ifs, store.Absent(lockKey(n)))
		ops = append(ops, store.Put(lockKey(n), []byte(wf.GetId())))
	}
	if _, err := s.st.Txn(ctx, store.Txn{If: ifs, Then: ops}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if wf, rerr := s.recorded(ctx, id, spec, by); !errors.Is(rerr, ErrNotFound) {
				return wf, rerr // a create under the same ID won: its steps stay
			}
		}
		_, _ = s.st.Txn(ctx, store.Txn{If: []store.Compare{absent}, Then: []store.Op{store.DeletePrefix(StepPrefix + wf.GetId() + "/")}})
		if errors.Is(err, store.ErrConflict) {
			return nil, s.lockedError(ctx, wf.GetNodes())
		}
		return nil, err
	}
	return wf, nil
}

// recorded answers a create under an ID that exists: the workflow when it is the same
// request (spec and caller), ErrExists otherwise, ErrNotFound when there is none.
func (s *Service) recorded(ctx context.Context, id string, spec *apiv1.WorkflowSpec, by string) (*storagev1.WorkflowRecord, error) {
	l, err := load(ctx, s.st, id)
	if err != nil {
		return nil, err
	}
	if proto.Equal(l.wf.GetSpec(), spec) && l.wf.GetCreatedBy() == by {
		return l.wf, nil
	}
	return nil, fmt.Errorf("%w: workflow ID %s is taken by a %s workflow created by %s at %s; an ID is used once: choose another, or leave it empty for a generated one",
		ErrExists, id, Kind(l.wf.GetSpec()), l.wf.GetCreatedBy(), l.wf.GetCreated().AsTime().UTC().Format(time.RFC3339))
}

// lockedError finds who holds one of nodes.
func (s *Service) lockedError(ctx context.Context, ns []string) error {
	for _, n := range ns {
		kv, _, err := s.st.Get(ctx, lockKey(n))
		if err != nil {
			continue
		}
		holder := string(kv.Value)
		kind := "another"
		if l, err := load(ctx, s.st, holder); err == nil {
			kind = Kind(l.wf.GetSpec())
		}
		return &LockedError{Node: n, Workflow: holder, Kind: kind}
	}
	return fmt.Errorf("%w: a node of this workflow was taken meanwhile: try again", ErrNodeLocked)
}

// SetPaused pauses (or resumes) a workflow that has not ended: while paused, its gate
// steps do not start (an upgrade's next node), and everything under way goes on.
func (s *Service) SetPaused(ctx context.Context, id string, paused bool) (*apiv1.Workflow, error) {
	for {
		l, err := load(ctx, s.st, id)
		if err != nil {
			return nil, err
		}
		wf := l.wf
		if terminal(wf.GetState()) {
			return nil, fmt.Errorf("%w: workflow %s already %s", ErrWrongState, id, stateName(wf.GetState()))
		}
		if wf.GetPaused() == paused {
			return View(wf), nil
		}
		wf.Paused, wf.Updated = paused, timestamppb.New(s.now())
		ops, err := headerOps(wf)
		if err != nil {
			return nil, err
		}
		if _, err := s.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(headerKey(id), l.hdrRev)}, Then: ops}); errors.Is(err, store.ErrConflict) {
			continue // the engine wrote meanwhile: read it again
		} else if err != nil {
			return nil, err
		}
		return View(wf), nil
	}
}

// Get returns a workflow with its steps.
func (s *Service) Get(ctx context.Context, id string) (*apiv1.Workflow, error) {
	l, err := load(ctx, s.st, id)
	if err != nil {
		return nil, err
	}
	return View(l.wf), nil
}

// List returns workflow headers (without steps), newest first, filtered by state.
func (s *Service) List(ctx context.Context, state apiv1.WorkflowState) ([]*apiv1.Workflow, error) {
	kvs, _, err := s.st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	var out []*apiv1.Workflow
	for _, kv := range kvs {
		var wf storagev1.WorkflowRecord
		if err := proto.Unmarshal(kv.Value, &wf); err != nil {
			return nil, fmt.Errorf("workflow %s: %w", kv.Key, err)
		}
		if v := View(&wf); state == apiv1.WorkflowState_WORKFLOW_STATE_UNSPECIFIED || v.GetState() == state {
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b *apiv1.Workflow) int {
		return b.GetCreated().AsTime().Compare(a.GetCreated().AsTime())
	})
	return out, nil
}

// Cancel stops a workflow: running tasks are cancelled, pending steps will not run, and its
// nodes are released.
//
// Nothing changes unless the header's compare-and-swap wins. The first transaction writes
// the CANCELLED header, releases the nodes and carries the first changed steps (the running
// ones first), compared against the header as loaded. From then on the engine leaves the
// workflow alone (it acts on running workflows only), the running steps' tasks are
// cancelled, and the other steps follow in batches, each only while the header is still the
// one this cancel wrote: a retry that came in between owns the steps (it resets every step
// that did not succeed, so what it read of a half-written cancel is fine). A controller that
// dies between batches leaves a CANCELLED workflow with steps still pending or running that
// nothing runs; cancelling it again finishes the job, and a retry resets them.
func (s *Service) Cancel(ctx context.Context, id string) (*apiv1.Workflow, error) {
	return viewed(s.cancel(ctx, id))
}

func (s *Service) cancel(ctx context.Context, id string) (*storagev1.WorkflowRecord, error) {
	for {
		l, err := load(ctx, s.st, id)
		if err != nil {
			return nil, err
		}
		wf := l.wf
		running, first, rest := cancelSteps(wf, s.now()) // changed steps: the running ones first
		// A cancelled workflow with steps left unfinished is a cancel cut short: finish it.
		finish := wf.GetState() == storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_CANCELLED && len(first)+len(rest) > 0
		if terminal(wf.GetState()) && !finish {
			return nil, fmt.Errorf("%w: workflow %s already %s", ErrWrongState, id, stateName(wf.GetState()))
		}
		steps, err := stepOps(wf, append(first, rest...))
		if err != nil {
			return nil, err
		}
		var ops []store.Op
		if !finish {
			wf.State = storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_CANCELLED
			wf.Updated = timestamppb.New(s.now())
			if ops, err = headerOps(wf); err != nil {
				return nil, err
			}
			for _, n := range wf.GetNodes() {
				ops = append(ops, store.Delete(lockKey(n)))
			}
		}
		n := fitting(store.LimitsOf(s.st), ops, steps)
		rev, err := s.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(headerKey(id), l.hdrRev)}, Then: append(ops, steps[:n]...)})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		guard := rev // the header this cancel wrote
		if finish {
			guard = l.hdrRev
		}
		for _, t := range running {
			if t != "" {
				_, _ = s.tasks.Cancel(ctx, t)
			}
		}
		if _, err := writeGuarded(ctx, s.st, steps[n:], []store.Compare{store.ModRevisionIs(headerKey(id), guard)}); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("workflow %s is cancelled, but recording its steps failed (cancel it again to finish): %w", id, err)
		}
		return wf, nil
	}
}

// Retry resumes a failed (or cancelled) workflow from the steps that did not succeed. A
// step whose outputs expire (a join token) runs again when a step that consumes them has
// not succeeded, and clean-up and finally steps (the peers' routes and load balancer lists)
// run again after the steps they follow.
//
// Nothing changes unless the header's compare-and-swap wins. The header flips to RUNNING and
// takes the nodes in the last transaction, with as many reset steps as fit beside it; steps
// that do not fit go first, in batches that each hold only while the header is the one
// loaded and the nodes are free. Until the header flips the workflow is finished, so the
// engine does not act on the reset steps. When the flip (or a batch) loses, the batches
// already written are put back as they were, again only while the header is the one loaded:
// if it changed, a retry from the same state won and wrote the same steps, or the workflow
// was deleted. A controller that dies before the flip leaves a finished workflow with some
// steps pending that nothing runs; retrying it again resets them all.
func (s *Service) Retry(ctx context.Context, id string) (*apiv1.Workflow, error) {
	return viewed(s.retry(ctx, id))
}

func (s *Service) retry(ctx context.Context, id string) (*storagev1.WorkflowRecord, error) {
	for {
		l, err := load(ctx, s.st, id)
		if err != nil {
			return nil, err
		}
		wf := l.wf
		if st := wf.GetState(); st != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED && st != storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_CANCELLED {
			return nil, fmt.Errorf("%w: workflow %s is %s; only a failed or cancelled workflow can be retried", ErrWrongState, id, stateName(st))
		}
		again := retrySet(l)
		var idx []int
		var before []store.Op // the reset steps as they were
		for i, st := range wf.GetSteps() {
			if !again[st.GetName()] {
				continue
			}
			b, err := proto.Marshal(st)
			if err != nil {
				return nil, err
			}
			idx, before = append(idx, i), append(before, store.Put(stepKey(id, i), b))
			resetForRetry(st)
		}
		wf.State = storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING
		wf.FailedStep, wf.Error = "", nil
		wf.Updated = timestamppb.New(s.now())
		steps, err := stepOps(wf, idx)
		if err != nil {
			return nil, err
		}
		ops, err := headerOps(wf)
		if err != nil {
			return nil, err
		}
		ifs := []store.Compare{store.ModRevisionIs(headerKey(id), l.hdrRev)}
		for _, n := range wf.GetNodes() {
			ifs = append(ifs, store.Absent(lockKey(n)))
			ops = append(ops, store.Put(lockKey(n), []byte(id)))
		}
		early := len(steps) - fittingLast(store.LimitsOf(s.st), ops, steps)
		written, err := writeGuarded(ctx, s.st, steps[:early], ifs)
		if err == nil {
			_, err = s.st.Txn(ctx, store.Txn{If: ifs, Then: append(ops, steps[early:]...)})
		}
		if err != nil && written > 0 {
			// Put back what was written, while the header is the one loaded.
			if _, uerr := writeGuarded(ctx, s.st, before[:written], ifs[:1]); uerr != nil && !errors.Is(uerr, store.ErrConflict) {
				return nil, fmt.Errorf("workflow %s was not retried, and %d of its steps were left reset (%v): retry it again: %w", id, written, uerr, err)
			}
		}
		if errors.Is(err, store.ErrConflict) {
			if cur, _, gerr := s.st.Get(ctx, headerKey(id)); gerr == nil && cur.ModRevision != l.hdrRev {
				continue // the workflow changed meanwhile
			}
			return nil, s.lockedError(ctx, wf.GetNodes())
		}
		if err != nil {
			return nil, err
		}
		return wf, nil
	}
}

// Cluster returns the recorded cluster, nil when there is none.
func (s *Service) Cluster(ctx context.Context) (*apiv1.Cluster, error) {
	c, _, err := readCluster(ctx, s.st)
	return c, err
}

// Locks returns node → the workflow holding it.
func (s *Service) Locks(ctx context.Context) (map[string]string, error) {
	kvs, _, err := s.st.List(ctx, LockPrefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[strings.TrimPrefix(kv.Key, LockPrefix)] = string(kv.Value)
	}
	return out, nil
}

// CreateTask runs one task directly on a node that no workflow holds: the lock is compared
// in the transaction that creates the task, so a task cannot slip onto a node between a
// workflow taking it and running its steps (a workflow expects the node as it left it).
// A held node is a *LockedError naming the workflow.
func (s *Service) CreateTask(ctx context.Context, t *taskv1.Task) (*apiv1.TaskRecord, error) {
	for range 3 {
		rec, err := s.tasks.Create(ctx, t, store.Absent(lockKey(t.GetNode())))
		if !errors.Is(err, tasks.ErrGuard) {
			return rec, err
		}
		if err := s.lockedError(ctx, []string{t.GetNode()}); err != nil && errors.As(err, new(*LockedError)) {
			return nil, err
		}
		// Released between the write and the read: try again.
	}
	return nil, fmt.Errorf("%w: node %s is being taken and released by workflows: try again", ErrNodeLocked, t.GetNode())
}

// Logs returns the task events of a workflow, only those for node's steps when given.
func (s *Service) Logs(ctx context.Context, id, node string) ([]*taskv1.TaskEvent, int64, error) {
	if _, _, err := s.st.Get(ctx, headerKey(id)); errors.Is(err, store.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	} else if err != nil {
		return nil, 0, err
	}
	kvs, rev, err := s.st.List(ctx, EventsPrefix(id, node))
	if err != nil {
		return nil, 0, err
	}
	out := make([]*taskv1.TaskEvent, 0, len(kvs))
	for _, kv := range kvs {
		var ev taskv1.TaskEvent
		if err := proto.Unmarshal(kv.Value, &ev); err != nil {
			return nil, 0, err
		}
		out = append(out, &ev)
	}
	sortEvents(out)
	return out, rev, nil
}

// EventsPrefix is where the task events of a workflow (for one node's steps) are stored.
func EventsPrefix(id, node string) string {
	p := tasks.EventsPrefix + id + "."
	if node != "" {
		p += node + "."
	}
	return p
}

func sortEvents(evs []*taskv1.TaskEvent) {
	slices.SortStableFunc(evs, func(a, b *taskv1.TaskEvent) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) })
}

func stateName(s storagev1.WorkflowRecordState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WORKFLOW_RECORD_STATE_"))
}

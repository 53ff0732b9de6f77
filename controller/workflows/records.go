// Package workflows is the controller's workflow engine. A workflow is a DAG of steps
// persisted in the store: its header under /workflows/ID, each step under
// /wfsteps/ID/NNNN (so a 500-node apply writes small step records, not one large one).
// The leader's Engine dispatches ready steps as tasks with stable IDs, records results and
// outputs, retries with backoff, and after a failover the new leader continues from the
// store. One workflow holds a node at a time (/locks/nodes/NAME); the recorded Kubernetes
// cluster lives at /cluster.
package workflows

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Keys.
const (
	Prefix     = "/workflows/"
	StepPrefix = "/wfsteps/"
	LockPrefix = "/locks/nodes/"
	ClusterKey = "/cluster"
)

var (
	// ErrNotFound: no workflow with that ID.
	ErrNotFound = errors.New("workflow not found")
	// ErrInvalid: the request is malformed.
	ErrInvalid = errors.New("invalid workflow")
	// ErrNodeLocked: another workflow holds a node (see *LockedError).
	ErrNodeLocked = errors.New("node is held by another workflow")
	// ErrWrongState: the workflow or cluster is not in a state that allows the request.
	ErrWrongState = errors.New("wrong state")
	// ErrExists: a client-chosen workflow ID names another workflow.
	ErrExists = errors.New("workflow ID taken")
)

// LockedError names the node and the workflow that holds it.
type LockedError struct {
	Node, Workflow, Kind string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("node %s is held by %s workflow %s: wait for it (deckctl workflow describe %s) or cancel it (deckctl workflow cancel %s)",
		e.Node, e.Kind, e.Workflow, e.Workflow, e.Workflow)
}

// Is makes errors.Is(err, ErrNodeLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrNodeLocked }

// NewID makes a workflow ID.
func NewID() string { return "wf-" + strings.ToLower(rand.Text()[:10]) }

// idRE is the shape of a workflow ID, generated or client-chosen: under the prefix only the
// engine creates tasks with (tasks.ReservedPrefix), and without a '.' (a step's task ID is
// WORKFLOW.NODE.STEP.ATTEMPT, so a dot could name another workflow's task).
var idRE = regexp.MustCompile(`^wf-[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidateID checks a client-chosen workflow ID.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w: id %q: use \"wf-\" then 1 to 40 lower-case letters, digits and '-', starting and ending with a letter or digit (for example wf-deploy-42); or leave it empty for a generated one", ErrInvalid, id)
	}
	return nil
}

func headerKey(id string) string      { return Prefix + id }
func stepKey(id string, i int) string { return fmt.Sprintf("%s%s/%05d", StepPrefix, id, i) }
func lockKey(node string) string      { return LockPrefix + node }
func taskID(wf, step string, n uint32) string {
	return fmt.Sprintf("%s.%s.%d", wf, strings.ReplaceAll(step, "/", "."), n)
}

// Kind names a workflow's kind for people.
func Kind(spec *apiv1.WorkflowSpec) string {
	switch spec.GetKind().(type) {
	case *apiv1.WorkflowSpec_Init:
		return "init"
	case *apiv1.WorkflowSpec_Join:
		return "join"
	case *apiv1.WorkflowSpec_Reset_:
		return "reset"
	case *apiv1.WorkflowSpec_Apply:
		return "apply"
	case *apiv1.WorkflowSpec_Upgrade:
		return "upgrade"
	case *apiv1.WorkflowSpec_CertsRenew:
		return "certs-renew"
	case *apiv1.WorkflowSpec_EtcdRestore:
		return "etcd-restore"
	}
	return "unknown"
}

// loaded is a workflow as read from the store: its header, steps and the header's revision.
type loaded struct {
	wf     *storagev1.WorkflowRecord
	hdrRev int64
	stepKV map[string]int // step name → index
	// settled[i] counts the leading dependencies of step i known to have ended in a way
	// that lets it start (a finally step's: ended at all). A step never leaves an ended
	// state while the engine keeps this copy (a retry or cancel is a write by someone else:
	// the engine loads the workflow again), so a pass looks only at the dependencies
	// after them: the 500 routes steps of a 500-node apply each wait for 500 records, and
	// every pass looked at each one's records from the first.
	settled []int32
	// depSteps[i] are step i's dependencies, resolved from their names once (see deps).
	depSteps [][]*storagev1.StepRecord
	// ended: every step below this index has ended (see low); failedLow is the first of
	// them that failed the workflow (not continue-on-failure), nil if none.
	ended     int
	failedLow *storagev1.StepRecord
	// startedBelow: the lanes with a step below ended that started (see newAdmission).
	startedBelow map[string]bool
	// netView is networkView(netViewOf, steps) as a pass computed it: the same for every
	// routes step the pass renders while the cluster record is the same (compute drops it at
	// the start of each pass: the steps' outputs change between passes).
	netView   []netNode
	netViewOf *apiv1.Cluster
	// netViewRecorded: every node of netView is recorded in netViewOf as the view has it.
	netViewRecorded bool
}

// networkView returns the pod network's nodes for cluster cl and this copy's steps,
// computed once per pass and record.
func (l *loaded) networkView(cl *apiv1.Cluster) []netNode {
	if l.netView == nil || l.netViewOf != cl {
		l.netView, l.netViewOf = networkView(cl, l.wf.GetSteps()), cl
		l.netViewRecorded = len(l.netView) == len(cl.GetNodes()) && slices.EqualFunc(l.netView, networkView(cl, nil), func(a, b netNode) bool {
			return a.name == b.name && a.podCIDR == b.podCIDR && a.address == b.address
		})
	}
	return l.netView
}

// viewRecorded says whether cluster record cl alone gives the network view of this copy's
// steps (no node of it registered and not recorded, or recorded otherwise).
func (l *loaded) viewRecorded(cl *apiv1.Cluster) bool {
	l.networkView(cl)
	return l.netViewRecorded
}

func (l *loaded) step(name string) *storagev1.StepRecord {
	if i, ok := l.stepKV[name]; ok {
		return l.wf.Steps[i]
	}
	return nil
}

// deps returns step i's dependencies (nil for a name no step of the copy has), resolved
// once per step: a pass looks at the pending steps' dependencies, and looking each up by
// name was most of what a pass cost at concurrency 50 (thousands of pending steps, a pass
// for every few results).
func (l *loaded) deps(i int) []*storagev1.StepRecord {
	if l.depSteps == nil {
		l.depSteps = make([][]*storagev1.StepRecord, len(l.wf.GetSteps()))
	}
	if l.depSteps[i] == nil {
		names := l.wf.Steps[i].GetDependsOn()
		ds := make([]*storagev1.StepRecord, len(names))
		for n, name := range names {
			ds[n] = l.step(name)
		}
		l.depSteps[i] = ds
	}
	return l.depSteps[i]
}

// low returns the index below which every step has ended, advancing it first, and the
// first of those steps that failed the workflow (nil if none). A step never leaves an ended
// state while the engine keeps this copy (see settled), so a pass looks at the steps from
// there: the steps of the lanes already done (most of a big apply's, most of the time)
// were walked by every pass, several times.
func (l *loaded) low() (int, *storagev1.StepRecord) {
	steps := l.wf.GetSteps()
	for l.ended < len(steps) && stepDone(steps[l.ended].GetState()) {
		s := steps[l.ended]
		if l.failedLow == nil && s.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_FAILED && !s.GetContinueOnFailure() {
			l.failedLow = s
		}
		if lane := s.GetLane(); lane != "" && (s.GetAttempts() > 0 || s.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED) {
			if l.startedBelow == nil {
				l.startedBelow = map[string]bool{}
			}
			l.startedBelow[lane] = true
		}
		l.ended++
	}
	return l.ended, l.failedLow
}

// firstFailed is the first step that failed the workflow (nil if none).
func (l *loaded) firstFailed() *storagev1.StepRecord {
	from, failed := l.low()
	if failed != nil {
		return failed
	}
	for _, s := range l.wf.GetSteps()[from:] {
		if s.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_FAILED && !s.GetContinueOnFailure() {
			return s
		}
	}
	return nil
}

// depsFrom returns the index of step i's first dependency not yet known to let it start;
// ok says whether dependency ds, ended, lets it start. It moves step i's cursor past the
// ended dependencies that do.
func (l *loaded) depsFrom(i int, ok func(ds *storagev1.StepRecord) bool) int {
	if l.settled == nil {
		l.settled = make([]int32, len(l.wf.GetSteps()))
	}
	deps := l.deps(i)
	n := int(l.settled[i])
	for n < len(deps) {
		ds := deps[n]
		if ds == nil || !stepDone(ds.GetState()) || !ok(ds) {
			break
		}
		n++
	}
	l.settled[i] = int32(n)
	return n
}

func index(wf *storagev1.WorkflowRecord) map[string]int {
	m := make(map[string]int, len(wf.GetSteps()))
	for i, s := range wf.GetSteps() {
		m[s.GetName()] = i
	}
	return m
}

// load reads a workflow with its steps.
func load(ctx context.Context, st store.Store, id string, opts ...store.ReadOption) (*loaded, error) {
	kv, _, err := st.Get(ctx, headerKey(id), opts...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var wf storagev1.WorkflowRecord
	if err := proto.Unmarshal(kv.Value, &wf); err != nil {
		return nil, fmt.Errorf("workflow %s: %w", id, err)
	}
	kvs, _, err := st.List(ctx, StepPrefix+id+"/", opts...)
	if err != nil {
		return nil, err
	}
	for _, skv := range kvs {
		var s storagev1.StepRecord
		if err := proto.Unmarshal(skv.Value, &s); err != nil {
			return nil, fmt.Errorf("workflow %s step %s: %w", id, skv.Key, err)
		}
		wf.Steps = append(wf.Steps, &s)
	}
	return &loaded{wf: &wf, hdrRev: kv.ModRevision, stepKV: index(&wf)}, nil
}

// headerBytes is the header without its steps.
func headerBytes(wf *storagev1.WorkflowRecord) ([]byte, error) {
	steps := wf.Steps
	wf.Steps = nil
	defer func() { wf.Steps = steps }()
	return proto.Marshal(wf)
}

// headerSize is the size of the header's record (the workflow without its steps).
func headerSize(wf *storagev1.WorkflowRecord) int {
	steps := wf.Steps
	wf.Steps = nil
	defer func() { wf.Steps = steps }()
	return proto.Size(wf)
}

// stepBatch is how many step records one write carries outside the header's transaction
// on a store that states no limit on operations.
const stepBatch = 100

// fitting returns how many of ops, from the first, one transaction carries beside base
// (the operations already in it) within the store's limits: at most the operations the
// store takes less base's (raftstore 2,048, etcd's default 128, as a pass writes; stepBatch
// on a store without an operations limit: a big apply's 6,000 steps in writes of 100 took
// 150 ms before its first step started), at most three quarters of its bytes (the rest for
// the compares and the request's own framing). It may be 0 when base is not empty; at
// least 1 when it is (an operation too big on its own fails with the store's error naming
// the limit).
func fitting(lim store.TxnLimits, base, ops []store.Op) int {
	maxOps := stepBatch
	if lim.Ops > 0 {
		maxOps = lim.Ops - len(base)
	}
	used := 0
	for _, op := range base {
		used += len(op.Key) + len(op.Value)
	}
	n := 0
	for n < len(ops) && n < maxOps {
		size := len(ops[n].Key) + len(ops[n].Value)
		if lim.Bytes > 0 && used+size > lim.Bytes*3/4 && (n > 0 || len(base) > 0) {
			break
		}
		used += size
		n++
	}
	return n
}

// fittingLast is fitting for the last operations of ops: how many of them, counted from
// the end, go beside base.
func fittingLast(lim store.TxnLimits, base, ops []store.Op) int {
	return fitting(lim, base, reversed(ops))
}

func reversed(ops []store.Op) []store.Op {
	r := slices.Clone(ops)
	slices.Reverse(r)
	return r
}

// writeSteps writes every step of wf in batches; the header's transaction makes them count.
func writeSteps(ctx context.Context, st store.Store, wf *storagev1.WorkflowRecord, ifs ...store.Compare) error {
	ops, err := stepOps(wf, nil)
	if err != nil {
		return err
	}
	_, err = writeGuarded(ctx, st, ops, ifs)
	return err
}

// stepOps puts the steps of wf at idx (all when idx is nil).
func stepOps(wf *storagev1.WorkflowRecord, idx []int) ([]store.Op, error) {
	if idx == nil {
		idx = make([]int, len(wf.GetSteps()))
		for i := range idx {
			idx[i] = i
		}
	}
	ops := make([]store.Op, 0, len(idx))
	for _, i := range idx {
		b, err := proto.Marshal(wf.Steps[i])
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.Put(stepKey(wf.GetId(), i), b))
	}
	return ops, nil
}

// writeGuarded applies ops in transactions that each fit the store's limits (see fitting),
// each only while every compare of ifs holds, and returns how many ops were applied (a
// failed compare is store.ErrConflict).
func writeGuarded(ctx context.Context, st store.Store, ops []store.Op, ifs []store.Compare) (int, error) {
	lim := store.LimitsOf(st)
	done := 0
	for done < len(ops) {
		n := fitting(lim, nil, ops[done:])
		if _, err := st.Txn(ctx, store.Txn{If: ifs, Then: ops[done : done+n]}); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// headerOps writes the header alone.
func headerOps(wf *storagev1.WorkflowRecord) ([]store.Op, error) {
	hb, err := headerBytes(wf)
	if err != nil {
		return nil, err
	}
	return []store.Op{store.Put(headerKey(wf.GetId()), hb)}, nil
}

// putOps writes the header and the given steps, only those: a pass that changed no step
// (one that only ends the workflow) writes none of them.
func putOps(wf *storagev1.WorkflowRecord, steps []int) ([]store.Op, error) {
	hb, err := headerBytes(wf)
	if err != nil {
		return nil, err
	}
	ops := []store.Op{store.Put(headerKey(wf.GetId()), hb)}
	for _, i := range steps {
		b, err := proto.Marshal(wf.Steps[i])
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.Put(stepKey(wf.GetId(), i), b))
	}
	return ops, nil
}

// readCluster returns the recorded cluster (nil when none) and its revision.
func readCluster(ctx context.Context, st store.Store, opts ...store.ReadOption) (*apiv1.Cluster, int64, error) {
	c, mod, _, err := readClusterRead(ctx, st, opts...)
	return c, mod, err
}

// readClusterRead is readCluster, also returning the store revision it read at.
func readClusterRead(ctx context.Context, st store.Store, opts ...store.ReadOption) (_ *apiv1.Cluster, mod, read int64, _ error) {
	kv, read, err := st.Get(ctx, ClusterKey, opts...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, read, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	var c apiv1.Cluster
	if err := proto.Unmarshal(kv.Value, &c); err != nil {
		return nil, 0, 0, fmt.Errorf("cluster record: %w", err)
	}
	return &c, kv.ModRevision, read, nil
}

// Terminal reports whether a workflow state is final.
func Terminal(s apiv1.WorkflowState) bool { return terminal(storagev1.WorkflowRecordState(s)) }

func terminal(s storagev1.WorkflowRecordState) bool {
	switch s {
	case storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_CANCELLED:
		return true
	}
	return false
}

func stepDone(s storagev1.StepRecordState) bool {
	switch s {
	case storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED, storagev1.StepRecordState_STEP_RECORD_STATE_FAILED, storagev1.StepRecordState_STEP_RECORD_STATE_CANCELLED, storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED:
		return true
	}
	return false
}

// clusterNode finds a node in the cluster record.
func clusterNode(c *apiv1.Cluster, name string) *apiv1.ClusterNode {
	for _, n := range c.GetNodes() {
		if n.GetName() == name {
			return n
		}
	}
	return nil
}

package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/clusterspec"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// view is what a reconcile pass reads besides the workflow, read-only. The engine's view
// reads the store (tasks from its cache of finished records, the cluster and node states
// once per pass); the table tests give maps. compute never reads anything else, never
// writes and never looks at the clock.
type view interface {
	// Task returns the record of task id, or an error wrapping tasks.ErrNotFound.
	Task(id string) (*apiv1.TaskRecord, error)
	// Cluster returns the recorded cluster (nil when none), its record's revision (0 when
	// none) and the store's revision when it was read (a route list's generation).
	Cluster() (cl *apiv1.Cluster, modRev, storeRev int64, err error)
	// Ready says whether node's agent is connected and Ready.
	Ready(node string) bool
	// Reads says whether node's agent reads feature (see package features).
	Reads(node, feature string) bool
	// Held returns the result of running task id that its agent sent and that waits for
	// this pass to record it in its write (see Engine.TakeResult); ok is false when none
	// waits.
	Held(id string) (w heldWrite, ok bool)
}

// passView is a pass's view: the records that the held results it records make are what
// its later reads of those tasks see (a step started in the pass takes its inputs from a
// step the pass ended).
type passView struct {
	view
	recorded map[string]*apiv1.TaskRecord
}

func (p *passView) Task(id string) (*apiv1.TaskRecord, error) {
	if r, ok := p.recorded[id]; ok {
		return r, nil
	}
	return p.view.Task(id)
}

func (p *passView) record(id string, rec *apiv1.TaskRecord) {
	if p.recorded == nil {
		p.recorded = map[string]*apiv1.TaskRecord{}
	}
	p.recorded[id] = rec
}

// heldWrite records a result held for a pass: the task record it makes (without its spec),
// and the compare and put that write it.
type heldWrite struct {
	rec *apiv1.TaskRecord
	cmp store.Compare
	put store.Op
}

// decisions is what a pass decided; the engine writes it in one fenced transaction (after
// cancelling the timed-out tasks and creating the missing ones).
type decisions struct {
	// Steps changed (indexes into the workflow's steps), to write with the header.
	steps []int
	// The workflow ended (its state, failed step and error are set on it).
	over bool
	// Tasks to create with their steps, each only if its ID is free (rendered: they may hold
	// a join token, which the step never does), and the compare and write of each (encoded
	// once: a wave of routes tasks is megabytes).
	create    []*taskv1.Task
	createIfs []store.Compare
	createOps []store.Op
	// Results held for this pass that it records (the tasks' IDs), each with the compare
	// and put of its task record: the steps they end are among the changed ones.
	recorded  []string
	recordIfs []store.Compare
	recordOps []store.Op
	// The records they make, without their specs.
	recordRecs []*apiv1.TaskRecord
	// Tasks to cancel on their nodes before the write: they overran their step's timeout.
	cancel []string
	// Tasks of running steps that were never created (a failover between a step marked
	// running and its task, before both were written together): create them, same IDs.
	missing []*taskv1.Task
	// The cluster record as the actions left it, to write only if it is still at
	// clusterRev (nil with clusterChanged: delete it, the last node left).
	clusterChanged bool
	cluster        *apiv1.Cluster
	clusterRev     int64
	// Look again at once: more steps are ready than one pass starts.
	again bool
	// Look again at this time when nothing else happens first (a retry's backoff ends, a
	// running step's timeout passes); zero when only an event can move the workflow.
	wake time.Time
}

// dirty reports whether the pass changed anything to write.
func (d *decisions) dirty() bool { return len(d.steps) > 0 || d.over }

// engineSettings are the engine's knobs compute reads.
type engineSettings struct {
	backoff   time.Duration // the first retry delay
	maxCreate int           // tasks one pass creates at most (a transaction's size)
	maxWrite  int           // operations one pass's write carries at most (0: no bound)
	// maxBytes bounds the bytes of the steps and tasks one pass writes (0: no bound); the
	// first change of a pass always fits.
	maxBytes int
}

// stepSlack is what a step or task record's key and the store add to its bytes, and what a
// step marked changed may still grow by in its pass.
const stepSlack = 256

// compute decides one reconcile pass of workflow l at now: it settles running steps from
// their task records, starts the steps that are ready (rendering their tasks, choosing their
// nodes, running controller actions on a working copy of the cluster record), and says
// whether the workflow is over. It changes l's steps in place (l is the engine's working
// copy, dropped when the write fails) and returns what to write. An error is the view's: the
// pass decides nothing.
func compute(l *loaded, v view, now time.Time, set engineSettings) (*decisions, error) {
	pv := &passView{view: v}
	v = pv
	wf := l.wf
	l.netView, l.netViewOf = nil, nil // the steps' outputs changed since the last pass
	d := &decisions{}
	changed := map[int]bool{}
	dry := wf.GetSpec().GetDryRun()
	id := wf.GetId()
	// room says whether the write has room for n more operations (a step, its task) beside
	// the header and the cluster record, and for bytes more bytes beside what it carries
	// already (a step records its task's changes and lists its dependencies: a routes step's
	// run to 9 KiB for 500 nodes). A pass always changes something. The release of the
	// nodes is counted only in the pass that ends the workflow (see 3.): reserving it in
	// every pass let a workflow holding more nodes than a write carries change one step per
	// pass. The header goes with every write; the cluster record with a pass whose action
	// changed it (counted then, see 2.).
	used := headerSize(wf) + stepSlack // bytes of the header, the changed steps (as marked), the created tasks
	room := func(n, bytes int) bool {
		ops := len(changed) + len(d.create) + len(d.recorded)
		return ops == 0 || (set.maxWrite <= 0 || 2+ops+n <= set.maxWrite) && (set.maxBytes <= 0 || used+bytes <= set.maxBytes)
	}
	// mark counts step i as changed, with its size then (what changes after is small: a
	// state, a time, a node).
	mark := func(i int) {
		if !changed[i] {
			changed[i] = true
			used += proto.Size(wf.Steps[i]) + stepSlack
		}
	}

	// 1. Results of running steps (none below the steps that all ended).
	from, _ := l.low()
	for i := from; i < len(wf.GetSteps()); i++ {
		s := wf.Steps[i]
		if s.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING || s.GetAction() != "" {
			continue
		}
		rec, err := v.Task(s.GetTaskId())
		var held heldWrite
		holds := false
		if err == nil && !tasks.Terminal(rec.GetState()) {
			if held, holds = v.Held(s.GetTaskId()); holds {
				rec = held.rec
			}
		}
		// A step whose task still runs, on time, changes nothing in this pass and needs no
		// room (sizing each of 500 running steps every pass was a quarter of the pass's CPU).
		quiet := err == nil && !holds && !tasks.Terminal(rec.GetState()) && !timesOut(s, now) && ownTask(rec, id, s)
		if err == nil && !quiet {
			n, need := 1, proto.Size(s)+stepSlack
			if tasks.Terminal(rec.GetState()) {
				need += proto.Size(rec.GetResult()) // the step takes its changes and outputs
			}
			if holds {
				n, need = 2, need+len(held.put.Key)+len(held.put.Value)+stepSlack
			}
			if !room(n, need) {
				d.again = true // the next pass records the rest
				break
			}
			if holds {
				used += len(held.put.Key) + len(held.put.Value) + stepSlack
			}
		}
		if errors.Is(err, tasks.ErrNotFound) {
			t := newTask(wf, s)
			if _, _, err := tasks.PutNew(t, now); err != nil {
				failStep(s, now, "DISPATCH_FAILED", err.Error(), "deckctl workflow retry "+id)
				mark(i)
				continue
			}
			d.missing = append(d.missing, t)
			continue
		}
		if err != nil {
			return nil, err
		}
		if !ownTask(rec, id, s) {
			failStep(s, now, "TASK_ID_TAKEN", idTakenMessage(rec, id, s), "deckctl workflow retry "+id+" runs the step again under a new task ID")
			mark(i)
			continue
		}
		switch settle(id, s, rec, now, backoffFor(set.backoff, s.GetAttempts())) {
		case stillRunning:
			continue
		case timedOut:
			d.cancel = append(d.cancel, s.GetTaskId())
		}
		mark(i)
		if holds {
			pv.record(s.GetTaskId(), held.rec)
			d.recorded = append(d.recorded, s.GetTaskId())
			d.recordIfs = append(d.recordIfs, held.cmp)
			d.recordOps = append(d.recordOps, held.put)
			d.recordRecs = append(d.recordRecs, held.rec)
		}
	}

	// 2. Start the steps that are ready.
	failed := l.firstFailed() != nil
	alive := mayRun(l, failed)
	adm := newAdmission(l)
	work := &clusterWork{v: v}
	// start decides whether step i starts in this pass; full when this pass's write is.
	start := func(i int, s *storagev1.StepRecord) (full bool, err error) {
		// The admission first: a full one turns away the steps of lanes not started (most
		// of the pending steps of a big apply) with one lookup.
		if !adm.admits(s) || !eligible(l, i, failed, alive, now) {
			return false, nil
		}
		if !room(2, 0) {
			d.again = true
			return true, nil
		}
		if s.GetAction() == ActionBarrier {
			mark(i)
			s.State = storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED
			s.Started, s.Finished = timestamppb.New(now), timestamppb.New(now)
			return false, nil
		}
		if s.GetAction() != "" {
			if !dry && !work.changed {
				// The first action that changes the cluster record adds it to the write.
				cl, err := work.get()
				if err != nil {
					return false, err
				}
				if !room(2, proto.Size(cl)+proto.Size(s)+2*stepSlack) {
					d.again = true
					return true, nil
				}
			}
			mark(i)
			if dry {
				s.State = storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED
				return false, nil
			}
			before := work.changed
			err := work.act(wf, l, s, now)
			if !before && work.changed {
				used += proto.Size(work.cl) + stepSlack
			}
			if err != nil {
				var ae *actionError
				if !errors.As(err, &ae) {
					return false, err
				}
				failStep(s, now, "ACTION_FAILED", err.Error(), "deckctl workflow retry "+id)
				return false, nil
			}
			s.State = storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED
			s.Started, s.Finished = timestamppb.New(now), timestamppb.New(now)
			return false, nil
		}
		if len(d.create) >= set.maxCreate {
			d.again = true // the next pass starts the rest
			return false, nil
		}
		node, wait, err := resolve(l, s, work)
		if err != nil {
			return false, err
		}
		if node == "" {
			if dry {
				s.State = storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED
				s.Error = &taskv1.TaskError{Reason: "DRY_RUN", Message: wait}
				mark(i)
			} else if s.GetError().GetMessage() != wait {
				s.Error = &taskv1.TaskError{Reason: "WAITING", Message: wait, Hint: "deckctl nodes shows which control planes are Ready"}
				mark(i)
			}
			return false, nil
		}
		if work.changed && readsClusterView(s) {
			// Its route list would be read from a cluster record this pass has not written
			// yet: the next pass, after the write, dispatches it.
			d.again = true
			return false, nil
		}
		t, err := render(l, s, v, work, dry)
		var skip *skipError
		if errors.As(err, &skip) {
			s.State, s.Finished = storagev1.StepRecordState_STEP_RECORD_STATE_SKIPPED, timestamppb.New(now)
			s.Error = &taskv1.TaskError{Reason: "NOTHING_TO_DO", Message: skip.why}
			mark(i)
			return false, nil
		}
		var in *inputError
		if errors.As(err, &in) {
			failStep(s, now, "INPUT_MISSING", err.Error(), "deckctl workflow retry "+id+" runs the steps that produce it again")
			mark(i)
			return false, nil
		}
		if err != nil {
			return false, err
		}
		size := proto.Size(t) + proto.Size(s) + 2*stepSlack // its task record and its step
		if !room(2, size) {
			d.again = true // the next pass starts it
			return true, nil
		}
		// The rendered spec (it may hold a token) goes only into the task record; the
		// step keeps its template, so secrets never show in the workflow.
		tid := taskID(id, s.GetName(), s.GetAttempts()+1)
		if rec, err := v.Task(tid); err == nil {
			// Never overwrite or adopt a record this engine did not create: its result
			// would become the step's. (Direct tasks cannot take the workflow prefix;
			// this is a record from before that rule, or a bug.)
			s.Attempts++
			s.TaskId = tid
			failStep(s, now, "TASK_ID_TAKEN", idTakenMessage(rec, id, s), "deckctl workflow retry "+id+" runs the step again under a new task ID")
			mark(i)
			return false, nil
		} else if !errors.Is(err, tasks.ErrNotFound) {
			return false, err
		}
		s.Node = node
		s.Attempts++
		s.TaskId = tid
		mark(i)
		task := newTask(wf, s)
		task.Spec = t
		cmp, op, err := tasks.PutNew(task, now)
		if err != nil {
			failStep(s, now, "DISPATCH_FAILED", err.Error(), "deckctl workflow retry "+id)
			return false, nil
		}
		s.State = storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING
		s.Started = timestamppb.New(now)
		s.Finished, s.Error = nil, nil
		d.create, d.createIfs, d.createOps = append(d.create, task), append(d.createIfs, cmp), append(d.createOps, op)
		used += len(op.Key) + len(op.Value) + stepSlack
		adm.start(s)
		return false, nil
	}
	// The steps whose tasks are filled from the cluster's nodes (a network step's routes)
	// first, from the record as the pass read it: once an action changed it they wait for
	// the next pass, and a pass that records a node (as most passes of a big apply do)
	// would otherwise hold them back pass after pass.
	for _, first := range []bool{true, false} {
		for i := from; i < len(wf.GetSteps()); i++ {
			s := wf.Steps[i]
			if first && (s.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_PENDING || !readsClusterView(s)) {
				continue
			}
			full, err := start(i, s)
			if err != nil {
				return nil, err
			}
			if full {
				break
			}
		}
	}
	if work.changed {
		d.clusterChanged, d.cluster, d.clusterRev = true, work.cl, work.modRev
	}

	// 3. Is the workflow over? Its end releases its nodes in the same write; when that
	// write would not fit beside this pass's step changes, the next pass (with nothing else
	// to write) ends it.
	if over, state, failedStep, err := outcome(l); over {
		if n := len(changed) + len(d.create) + len(d.recorded); set.maxWrite > 0 && n > 0 && 2+len(wf.GetNodes())+n > set.maxWrite {
			d.again = true
		} else {
			wf.State, wf.FailedStep, wf.Error = state, failedStep, err
			d.over = true
		}
	}
	d.steps = slices.Sorted(maps.Keys(changed))
	if d.dirty() {
		wf.Updated = timestamppb.New(now)
	}
	if !d.over {
		d.wake = wakeAt(wf.GetSteps()[from:])
	}
	return d, nil
}

// wakeAt is when a workflow needs a look without an event: the earliest end of a pending
// step's retry backoff or of a running step's timeout.
func wakeAt(steps []*storagev1.StepRecord) time.Time {
	var at time.Time
	earlier := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	for _, s := range steps {
		switch s.GetState() {
		case storagev1.StepRecordState_STEP_RECORD_STATE_PENDING:
			if nb := s.GetNotBefore(); nb != nil {
				earlier(nb.AsTime())
			}
		case storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING:
			if to := s.GetTimeout().AsDuration(); to > 0 && s.GetStarted() != nil && s.GetError().GetReason() != "TIMEOUT" {
				earlier(s.GetStarted().AsTime().Add(to + time.Millisecond))
			}
		}
	}
	return at
}

// clusterWork is the cluster record as a pass sees it: read from the view once, when a step
// first needs it, and changed in place by the pass's actions.
type clusterWork struct {
	v                view
	read, changed    bool
	cl               *apiv1.Cluster
	modRev, storeRev int64
}

func (w *clusterWork) get() (*apiv1.Cluster, error) {
	if !w.read {
		cl, mod, rev, err := w.v.Cluster()
		if err != nil {
			return nil, err
		}
		w.cl, w.modRev, w.storeRev, w.read = cl, mod, rev, true
	}
	return w.cl, nil
}

// actionError: a controller action cannot be done (the step fails with it).
type actionError struct{ msg string }

func (e *actionError) Error() string { return e.msg }

// act does controller action s on the pass's working cluster record.
func (w *clusterWork) act(wf *storagev1.WorkflowRecord, l *loaded, s *storagev1.StepRecord, at time.Time) error {
	cl, err := w.get()
	if err != nil {
		return err
	}
	node := s.GetLane()
	now := timestamppb.New(at)
	var next *apiv1.Cluster
	switch s.GetAction() {
	case ActionRecordCluster:
		if cl != nil {
			if clusterNode(cl, node) != nil {
				return nil // recorded before a failover
			}
			return &actionError{"a cluster was recorded meanwhile"}
		}
		in := l.step(node + "/init")
		reg := l.step(node + "/registered").GetOutputs()
		next = &apiv1.Cluster{
			Spec: in.GetTask().GetKubeadmInit().GetCluster(), CaCertHash: in.GetOutputs()["ca_cert_hash"],
			Nodes: []*apiv1.ClusterNode{{Name: node, Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Joined: now, WorkflowId: wf.GetId(),
				PodCidr: reg["pod_cidr"], Address: reg["address"], KubeletVersion: in.GetTask().GetKubeadmInit().GetCluster().GetKubernetesVersion(),
				ControlPlaneVersion: in.GetTask().GetKubeadmInit().GetCluster().GetKubernetesVersion()}},
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
			return &actionError{"no cluster is recorded"}
		}
		if clusterNode(cl, node) != nil {
			return nil
		}
		next = proto.Clone(cl).(*apiv1.Cluster)
		role := l.step(node + "/join").GetTask().GetKubeadmJoin().GetRole()
		reg := l.step(node + "/registered").GetOutputs()
		cn := &apiv1.ClusterNode{Name: node, Role: role, Joined: now, WorkflowId: wf.GetId(),
			PodCidr: reg["pod_cidr"], Address: reg["address"], KubeletVersion: cl.GetSpec().GetKubernetesVersion()}
		if role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			cn.ControlPlaneVersion = cl.GetSpec().GetKubernetesVersion()
		}
		next.Nodes = append(next.Nodes, cn)
		next.Updated = now
	case ActionRecordVersion:
		if cl == nil {
			return &actionError{"no cluster is recorded"}
		}
		v := wf.GetSpec().GetUpgrade().GetKubernetesVersion()
		if v == "" {
			return &actionError{"record-version outside an upgrade"}
		}
		if cl.GetSpec().GetKubernetesVersion() == v {
			return nil
		}
		next = proto.Clone(cl).(*apiv1.Cluster)
		next.Spec.KubernetesVersion = v
		next.Updated = now
	case ActionRecordUpgraded:
		v := wf.GetSpec().GetUpgrade().GetKubernetesVersion()
		n := clusterNode(cl, node)
		if n == nil || v == "" {
			return &actionError{fmt.Sprintf("%s is not a node of the recorded cluster", node)}
		}
		cp := n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
		if n.GetKubeletVersion() == v && (!cp || n.GetControlPlaneVersion() == v) {
			return nil
		}
		next = proto.Clone(cl).(*apiv1.Cluster)
		m := clusterNode(next, node)
		m.KubeletVersion = v
		if cp {
			m.ControlPlaneVersion = v
		}
		next.Updated = now
	case ActionRecordSettings:
		if cl == nil {
			return &actionError{"no cluster is recorded"}
		}
		doc, err := clusterspec.Parse(wf.GetSpec().GetApply().GetClusterYaml())
		if err != nil {
			return &actionError{"record-settings outside an apply: " + err.Error()}
		}
		if len(settingsChanges(cl.GetSpec(), doc.Spec)) == 0 {
			return nil
		}
		next = proto.Clone(cl).(*apiv1.Cluster)
		next.Spec.Certificates, next.Spec.Etcd = doc.Spec.GetCertificates(), doc.Spec.GetEtcd()
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
		return &actionError{fmt.Sprintf("unknown action %q", s.GetAction())}
	}
	if len(next.GetNodes()) == 0 {
		next = nil // the last node left: no cluster any more
	}
	w.cl, w.changed = next, true
	return nil
}

// resolve picks the node a step runs on; "" with a reason when none is available yet. It
// reads the cluster only when the step may run on any control plane.
func resolve(l *loaded, s *storagev1.StepRecord, w *clusterWork) (node, wait string, err error) {
	if n, ok := fixedNode(l, s); ok {
		// A step that may run on any control plane prefers the one an earlier step ran on
		// (the etcd check, where the drain ran), but not once that one is down: a retry
		// then goes to another Ready control plane.
		if !s.GetAnyControlPlane() || w.v.Ready(n) {
			return n, "", nil
		}
	}
	if !s.GetAnyControlPlane() && s.GetNodeFrom() == "" {
		return "", "the step names no node", nil
	}
	cl, err := w.get()
	if err != nil {
		return "", "", err
	}
	node, wait = pickNode(s, cl, w.v.Ready)
	return node, wait, nil
}

// readsClusterView says whether step s's task is filled from the cluster's nodes (a
// network step's routes and pod CIDR).
func readsClusterView(s *storagev1.StepRecord) bool {
	for _, in := range s.GetInputs() {
		if in.GetStep() == "" {
			return true
		}
	}
	return false
}

// inputError: an input of a step cannot be filled (the step fails with it).
type inputError struct{ error }

func (e *inputError) Unwrap() error { return e.error }

// render fills step s's inputs into its task spec from the producing steps' task outputs
// (read from the view) and a network step's from the cluster's nodes as they are now.
func render(l *loaded, s *storagev1.StepRecord, v view, w *clusterWork, dry bool) (*taskv1.TaskSpec, error) {
	var cl *apiv1.Cluster
	outputs := map[string]map[string]string{}
	for _, in := range s.GetInputs() {
		if in.GetStep() == "" {
			// Resolved when the step is dispatched, not when the plan was built: nodes that
			// joined (or left) since, in this workflow or another, are in the list.
			var err error
			if cl, err = w.get(); err != nil {
				return nil, err
			}
			continue
		}
		if p := l.step(in.GetStep()); p != nil && p.GetTaskId() != "" && p.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED {
			rec, err := v.Task(p.GetTaskId())
			if errors.Is(err, tasks.ErrNotFound) {
				// Its record is gone (retention deleted it while the workflow was finished,
				// before a retry): the step's own copy has the public outputs (a pod CIDR), and
				// a retry runs a producer of secret ones again (they are ephemeral).
				outputs[in.GetStep()] = p.GetOutputs()
				continue
			}
			if err != nil {
				return nil, err
			}
			outputs[in.GetStep()] = rec.GetResult().GetOutputs()
		}
	}
	t, err := renderSpec(l, s, cl, w.storeRev, outputs, dry, func(f string) bool { return v.Reads(s.GetNode(), f) })
	var skip *skipError
	if err != nil && !errors.As(err, &skip) {
		return nil, &inputError{err}
	}
	return t, err
}

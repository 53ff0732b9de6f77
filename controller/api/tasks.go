package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/fanout"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// redact hides secrets from callers that may not read them (a viewer who saw a join token
// or a certificate key could join machines to the Kubernetes cluster): the secret outputs
// and every spec field marked secret, in any kind (internal/tasksecrets).
func redact(ctx context.Context, rec *apiv1.TaskRecord) *apiv1.TaskRecord {
	if id, _ := IdentityFrom(ctx); id.Role == pki.RoleAdmin || id.Role == pki.RoleOperator || rec == nil {
		return rec
	}
	var hide []string
	for k := range rec.GetResult().GetOutputs() {
		if tasksecrets.Output(k) {
			hide = append(hide, k)
		}
	}
	if len(hide) == 0 && len(tasksecrets.Values(rec.GetTask().GetSpec())) == 0 {
		return rec // nothing to hide: no copy (the record may hold a large artifact)
	}
	const hidden = "<redacted: admin or operator only>"
	out := proto.Clone(rec).(*apiv1.TaskRecord)
	tasksecrets.Redact(out.GetTask().GetSpec(), hidden)
	for _, k := range hide {
		out.Result.Outputs[k] = hidden
	}
	return out
}

// TaskServer implements apiv1.TaskServiceServer.
type TaskServer struct {
	apiv1.UnimplementedTaskServiceServer
	Tasks *tasks.Service
	// Workflows creates direct tasks, refusing a node a workflow holds.
	Workflows *workflows.Service
	Nodes     *nodes.Registry
	Store     store.Store
}

// directOnly refuses the kinds that are never run as direct tasks.
func directOnly(spec *taskv1.TaskSpec) error {
	switch {
	case spec.GetKubeconfigSign() != nil:
		// Signing a cluster-admin certificate is CreateKubeconfig's, which only admins may call.
		return &fieldError{"spec.kubeconfig_sign", "is not run as a direct task: use deckctl kubeconfig (CreateKubeconfig, admins only)"}
	case spec.GetManifest() != nil:
		// kubectl with the cluster's admin.conf: whoever may apply any object is a cluster
		// admin, which an operator is not. Workflows apply the pod network's manifest.
		return &fieldError{"spec.manifest", "is not run as a direct task: it applies objects as the cluster's admin; apply your own with kubectl (deckctl kubeconfig gives admins a credential)"}
	case spec.GetEtcdRestore() != nil:
		// A phase alone (a stop, a re-join) breaks a healthy control plane: only the restore
		// workflow runs them, after its check, holding every control plane.
		return &fieldError{"spec.etcd_restore", "is not run as a direct task: use deckctl etcd restore (a workflow that checks the snapshot and the cluster first)"}
	}
	return nil
}

func (s *TaskServer) CreateTask(ctx context.Context, req *apiv1.CreateTaskRequest) (*apiv1.CreateTaskResponse, error) {
	if err := directOnly(req.GetSpec()); err != nil {
		return nil, invalid(err)
	}
	rec, err := s.Workflows.CreateTask(ctx, &taskv1.Task{Id: req.GetId(), Node: req.GetNode(), Spec: req.GetSpec(), DryRun: req.GetDryRun()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.CreateTaskResponse{Task: rec}, nil
}

func (s *TaskServer) GetTask(ctx context.Context, req *apiv1.GetTaskRequest) (*apiv1.GetTaskResponse, error) {
	rec, _, err := s.Tasks.Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	rec = redact(ctx, rec)
	if !req.GetIncludeArtifact() {
		rec = withoutArtifact(rec)
	}
	return &apiv1.GetTaskResponse{Task: rec}, nil
}

// withoutArtifact leaves a record's artifact out, keeping its size: lists and watches never
// carry artifacts (a few diagnostics bundles would exceed a message), GetTask does on request.
func withoutArtifact(rec *apiv1.TaskRecord) *apiv1.TaskRecord {
	if len(rec.GetResult().GetArtifact()) == 0 {
		return rec
	}
	out := proto.Clone(rec).(*apiv1.TaskRecord)
	out.ArtifactSize = uint64(len(out.Result.Artifact))
	out.Result.Artifact = nil
	return out
}

func (s *TaskServer) ListTasks(ctx context.Context, req *apiv1.ListTasksRequest) (*apiv1.ListTasksResponse, error) {
	pg, err := newPage("tasks", req.GetNode()+"\x00"+req.GetWorkflowId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, invalid(err)
	}
	recs, err := s.Tasks.List(ctx, req.GetNode(), req.GetWorkflowId())
	if err != nil {
		return nil, toStatus(err)
	}
	for i := range recs {
		recs[i] = withoutArtifact(redact(ctx, recs[i]))
	}
	out, next := take(pg, recs, func(r *apiv1.TaskRecord) string { return r.GetTask().GetId() })
	return &apiv1.ListTasksResponse{Tasks: out, NextPageToken: next}, nil
}

func (s *TaskServer) CancelTask(ctx context.Context, req *apiv1.CancelTaskRequest) (*apiv1.CancelTaskResponse, error) {
	rec, err := s.Tasks.Cancel(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.CancelTaskResponse{Task: withoutArtifact(redact(ctx, rec))}, nil
}

// GetTaskLogs returns a page of a task's log: a task keeps up to sessions.MaxTaskLogBytes
// per replica, as much as gRPC's default message limit, so a log comes in pages of at most
// MaxPageBytes.
func (s *TaskServer) GetTaskLogs(ctx context.Context, req *apiv1.GetTaskLogsRequest) (*apiv1.GetTaskLogsResponse, error) {
	pg, err := newLogPage("task_logs", req.GetId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, invalid(err)
	}
	if _, _, err := s.Tasks.Get(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	evs, _, err := s.Tasks.Events(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	out, next := take(pg, evs, logKeys(evs))
	return &apiv1.GetTaskLogsResponse{Events: out, NextPageToken: next}, nil
}

// logKeys sorts a log's events (of one task or of a workflow's tasks) by their page key and
// returns it: time, then task, then order among that task's events of the same time. Events
// are stored by time too, so one recorded after a page was read sorts after it, unless its
// agent's clock went back.
func logKeys(evs []*taskv1.TaskEvent) func(*taskv1.TaskEvent) string {
	keys := make(map[*taskv1.TaskEvent]string, len(evs))
	ties := map[string]int{}
	for _, ev := range evs {
		// Offset so that times before 1970 sort too.
		k := fmt.Sprintf("%020d\x00%s\x00", uint64(ev.GetTime().AsTime().UnixNano())+1<<63, ev.GetTaskId())
		keys[ev] = fmt.Sprintf("%s%06d", k, ties[k])
		ties[k]++
	}
	slices.SortStableFunc(evs, func(a, b *taskv1.TaskEvent) int { return strings.Compare(keys[a], keys[b]) })
	return func(ev *taskv1.TaskEvent) string { return keys[ev] }
}

// newLogPage is newPage for a log: page_size 0 means as many events as fit in MaxPageBytes
// (a log has many small events; DefaultPageSize would take hundreds of calls).
func newLogPage(list, filter string, size int32, token string) (*page, error) {
	pg, err := newPage(list, filter, size, token)
	if err == nil && size == 0 {
		pg.size = math.MaxInt
	}
	return pg, err
}

// WatchTask streams the events recorded so far, then new ones and record changes, until
// the task ends.
func (s *TaskServer) WatchTask(req *apiv1.WatchTaskRequest, stream apiv1.TaskService_WatchTaskServer) error {
	ctx := stream.Context()
	id := req.GetId()
	// The events first, then the record: the watch starts at the events' revision, so it
	// sends every later event once, and a record changed since (a task that ended between
	// the two reads) again. Read the other way round, an end between the reads was in
	// neither the record sent nor the watch, and the watch waited for it forever.
	evs, rev, err := s.Tasks.Events(ctx, id)
	if err != nil {
		return toStatus(err)
	}
	rec, _, err := s.Tasks.Get(ctx, id)
	if err != nil {
		return toStatus(err)
	}
	if tasks.Terminal(rec.GetState()) {
		// It ended: every event it has was stored before its end (a result waits for the
		// events before it), the last ones maybe after the first read. Read them again.
		if evs, _, err = s.Tasks.Events(ctx, id); err != nil {
			return toStatus(err)
		}
	}
	for _, ev := range evs {
		if err := stream.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Event{Event: ev}}); err != nil {
			return err
		}
	}
	if err := stream.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Task{Task: withoutArtifact(redact(ctx, rec))}}); err != nil {
		return err
	}
	if tasks.Terminal(rec.GetState()) {
		return nil
	}
	// Both prefixes share the root; watch "/" filtered to this task's two keys.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		done, last, err := s.watchTask(wctx, stream, id, rev)
		if done || !errors.Is(err, store.ErrCompacted) {
			return err
		}
		// This replica skipped revisions (it installed a snapshot from the leader): send
		// what the watch missed, then watch again.
		if done, rev, err = s.resendTask(ctx, stream, id, last); done || err != nil {
			return err
		}
	}
}

// watchTask streams a task's updates after revision rev until it ends (done), the watch
// fails (store.ErrCompacted: last is the revision delivered up to) or ctx ends.
func (s *TaskServer) watchTask(ctx context.Context, stream apiv1.TaskService_WatchTaskServer, id string, rev int64) (done bool, last int64, err error) {
	last = rev
	ch, err := s.Store.Watch(ctx, "/task", rev)
	if errors.Is(err, store.ErrCompacted) {
		return false, last, err
	}
	if err != nil {
		return false, last, toStatus(err)
	}
	for ev := range ch {
		if ev.Err != nil {
			if errors.Is(ev.Err, store.ErrCompacted) {
				return false, last, ev.Err
			}
			return false, last, toStatus(ev.Err)
		}
		last = ev.Revision
		if ev.Type != store.EventPut {
			continue
		}
		switch {
		case strings.HasPrefix(ev.KV.Key, tasks.EventsPrefix+id+"/"):
			var te taskv1.TaskEvent
			if proto.Unmarshal(ev.KV.Value, &te) == nil {
				if err := stream.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Event{Event: &te}}); err != nil {
					return true, last, err
				}
			}
		case ev.KV.Key == tasks.Prefix+id:
			rec, err := tasks.Decode(ev.KV)
			if err != nil {
				continue
			}
			if err := stream.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Task{Task: withoutArtifact(redact(ctx, rec))}}); err != nil {
				return true, last, err
			}
			if tasks.Terminal(rec.GetState()) {
				return true, last, nil
			}
		}
	}
	return true, last, ctx.Err()
}

// resendTask sends a task's events written after revision after (events are written once,
// so their ModRevision says which the client has not seen) and the task record if it
// changed, and returns the revision to watch from.
func (s *TaskServer) resendTask(ctx context.Context, stream apiv1.TaskService_WatchTaskServer, id string, after int64) (done bool, rev int64, err error) {
	kvs, rev, err := s.Store.List(ctx, tasks.EventsPrefix+id+"/")
	if err != nil {
		return false, 0, toStatus(err)
	}
	for _, kv := range kvs {
		var te taskv1.TaskEvent
		if kv.ModRevision <= after || proto.Unmarshal(kv.Value, &te) != nil {
			continue
		}
		if err := stream.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Event{Event: &te}}); err != nil {
			return true, 0, err
		}
	}
	rec, recRev, err := s.Tasks.Get(ctx, id)
	if err != nil {
		return false, 0, toStatus(err)
	}
	if recRev > after {
		if err := stream.Send(&apiv1.WatchTaskResponse{Update: &apiv1.WatchTaskResponse_Task{Task: withoutArtifact(redact(ctx, rec))}}); err != nil {
			return true, 0, err
		}
	}
	return tasks.Terminal(rec.GetState()), rev, nil
}

// RunTasks runs one task on the nodes a selector picks (controller/fanout), streaming the
// progress until every node's task ended.
func (s *TaskServer) RunTasks(req *apiv1.RunTasksRequest, stream apiv1.TaskService_RunTasksServer) error {
	ctx := stream.Context()
	if err := directOnly(req.GetSpec()); err != nil {
		return invalid(err)
	}
	concurrency, timeout, err := fanout.Limits(req.GetConcurrency(), req.GetTimeout().AsDuration())
	if err != nil {
		return invalidRun(err)
	}
	id := req.GetId()
	if id == "" {
		id = "run-" + strings.ToLower(rand.Text()[:12])
	}
	all, err := s.Nodes.List(ctx)
	if err == nil {
		err = annotateNodes(ctx, s.Workflows, all) // roles to select on, holders to skip
	}
	if err != nil {
		return toStatus(err)
	}
	selected, err := fanout.Select(all, req.GetNodes())
	if err != nil {
		return invalidRun(err)
	}
	started, err := s.sameRun(ctx, id, req)
	if err != nil {
		return err
	}
	run, skipped := fanout.Plan(selected, s.Tasks.Now(), started)
	names := make([]string, len(selected))
	for i, n := range selected {
		names[i] = n.GetName()
	}
	b := fanout.Backend{
		Store:  s.Store,
		Create: s.Workflows.CreateTask,
		Cancel: s.Tasks.CancelFor,
		View:   func(rec *apiv1.TaskRecord) *apiv1.TaskRecord { return withoutArtifact(redact(ctx, rec)) },
		Now:    s.Tasks.Now,
	}
	err = fanout.Run(ctx, b, fanout.Request{ID: id, Selected: names, Run: run, Skipped: skipped, Spec: req.GetSpec(), DryRun: req.GetDryRun(),
		Concurrency: concurrency, Timeout: timeout}, stream.Send)
	if err != nil && ctx.Err() == nil {
		return toStatus(err)
	}
	return err
}

// invalidRun is invalid for a fan-out's errors, naming their field.
func invalidRun(err error) error {
	if fe := (*fanout.FieldError)(nil); errors.As(err, &fe) {
		return invalid(&fieldError{fe.Field, fe.Msg})
	}
	return invalid(err)
}

// sameRun returns the nodes that have their task in run id already (a resumed run), and
// refuses a run ID whose tasks so far are another task's: the same request again resumes a
// run, another one under its ID would mix two runs' results.
func (s *TaskServer) sameRun(ctx context.Context, id string, req *apiv1.RunTasksRequest) (map[string]bool, error) {
	kvs, _, err := s.Store.List(ctx, tasks.Prefix+id+".")
	if err != nil {
		return nil, toStatus(err)
	}
	started := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		rec, err := tasks.Decode(kv)
		if err != nil {
			return nil, toStatus(err)
		}
		if fanout.TaskID(id, rec.GetTask().GetNode()) != rec.GetTask().GetId() {
			continue // another run's, whose ID starts with this one's
		}
		if !proto.Equal(rec.GetTask().GetSpec(), req.GetSpec()) || rec.GetTask().GetDryRun() != req.GetDryRun() {
			return nil, toStatus(fmt.Errorf("%w: id: run %s ran another task (task %s, created %s): a run ID is used once; choose another --id, or leave it empty for a generated one",
				tasks.ErrExists, id, rec.GetTask().GetId(), rec.GetCreated().AsTime().UTC().Format(time.RFC3339)))
		}
		started[rec.GetTask().GetNode()] = true
	}
	return started, nil
}

package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/kubeconfigs"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/transfers"
	"github.com/deckhandhq/deckhand/controller/workflows"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// WorkflowServer implements apiv1.WorkflowServiceServer on any replica.
type WorkflowServer struct {
	apiv1.UnimplementedWorkflowServiceServer
	Workflows *workflows.Service
	Store     store.Store
	// Kubeconfigs signs user certificates for CreateKubeconfig.
	Kubeconfigs *kubeconfigs.Issuer
	// For SaveEtcdSnapshot: the uploads callers of this replica wait for, the tasks and
	// nodes, and the address agents reach this replica at.
	Transfers *transfers.Registry
	Tasks     *tasks.Service
	Nodes     *nodes.Registry
	Address   string
}

func (s *WorkflowServer) CreateWorkflow(ctx context.Context, req *apiv1.CreateWorkflowRequest) (*apiv1.CreateWorkflowResponse, error) {
	id, _ := IdentityFrom(ctx)
	wf, err := s.Workflows.CreateWithID(ctx, req.GetId(), req.GetSpec(), id.Name)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.CreateWorkflowResponse{Workflow: wf}, nil
}

func (s *WorkflowServer) PlanWorkflow(ctx context.Context, req *apiv1.PlanWorkflowRequest) (*apiv1.PlanWorkflowResponse, error) {
	resp, err := s.Workflows.Plan(ctx, req.GetSpec())
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func (s *WorkflowServer) GetWorkflow(ctx context.Context, req *apiv1.GetWorkflowRequest) (*apiv1.GetWorkflowResponse, error) {
	wf, err := s.Workflows.Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.GetWorkflowResponse{Workflow: wf}, nil
}

func (s *WorkflowServer) ListWorkflows(ctx context.Context, req *apiv1.ListWorkflowsRequest) (*apiv1.ListWorkflowsResponse, error) {
	pg, err := newPage("workflows", req.GetState().String(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, invalid(err)
	}
	wfs, err := s.Workflows.List(ctx, req.GetState())
	if err != nil {
		return nil, toStatus(err)
	}
	// Newest first: the key orders by creation time, descending, then by ID.
	key := func(w *apiv1.Workflow) string {
		return fmt.Sprintf("%020d/%s", math.MaxInt64-w.GetCreated().AsTime().UnixNano(), w.GetId())
	}
	slices.SortFunc(wfs, func(a, b *apiv1.Workflow) int { return strings.Compare(key(a), key(b)) })
	out, next := take(pg, wfs, key)
	return &apiv1.ListWorkflowsResponse{Workflows: out, NextPageToken: next}, nil
}

func (s *WorkflowServer) CancelWorkflow(ctx context.Context, req *apiv1.CancelWorkflowRequest) (*apiv1.CancelWorkflowResponse, error) {
	wf, err := s.Workflows.Cancel(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.CancelWorkflowResponse{Workflow: wf}, nil
}

func (s *WorkflowServer) PauseWorkflow(ctx context.Context, req *apiv1.PauseWorkflowRequest) (*apiv1.PauseWorkflowResponse, error) {
	wf, err := s.Workflows.SetPaused(ctx, req.GetId(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.PauseWorkflowResponse{Workflow: wf}, nil
}

func (s *WorkflowServer) ResumeWorkflow(ctx context.Context, req *apiv1.ResumeWorkflowRequest) (*apiv1.ResumeWorkflowResponse, error) {
	wf, err := s.Workflows.SetPaused(ctx, req.GetId(), false)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ResumeWorkflowResponse{Workflow: wf}, nil
}

func (s *WorkflowServer) RetryWorkflow(ctx context.Context, req *apiv1.RetryWorkflowRequest) (*apiv1.RetryWorkflowResponse, error) {
	wf, err := s.Workflows.Retry(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.RetryWorkflowResponse{Workflow: wf}, nil
}

func (s *WorkflowServer) GetCluster(ctx context.Context, _ *apiv1.GetClusterRequest) (*apiv1.GetClusterResponse, error) {
	c, err := s.Workflows.Cluster(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.GetClusterResponse{Cluster: c}, nil
}

// CreateKubeconfig signs the caller's CSR with the cluster CA through a control-plane agent
// (the request was checked at the edge: name, role, ttl, and a CSR for exactly them).
func (s *WorkflowServer) CreateKubeconfig(ctx context.Context, req *apiv1.CreateKubeconfigRequest) (*apiv1.CreateKubeconfigResponse, error) {
	kc, err := s.Kubeconfigs.Issue(ctx, kubeconfigs.Request{Name: req.GetName(), Role: kubeconfigRoles[req.GetRole()], TTL: req.GetTtl().AsDuration(), CSR: req.GetCsrPem()})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &apiv1.CreateKubeconfigResponse{CertificatePem: kc.CertificatePEM, CaPem: kc.CAPEM, Server: kc.Server, ClusterName: kc.ClusterName, TaskId: kc.TaskID, Node: kc.Node}
	if !kc.Expires.IsZero() {
		resp.Expires = timestamppb.New(kc.Expires)
	}
	return resp, nil
}

// GetWorkflowLogs returns a page of the logs of a workflow's tasks (each up to
// sessions.MaxTaskLogBytes), in pages of at most MaxPageBytes, in time order.
func (s *WorkflowServer) GetWorkflowLogs(ctx context.Context, req *apiv1.GetWorkflowLogsRequest) (*apiv1.GetWorkflowLogsResponse, error) {
	pg, err := newLogPage("workflow_logs", req.GetId()+"\x00"+req.GetNode(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, invalid(err)
	}
	evs, _, err := s.Workflows.Logs(ctx, req.GetId(), req.GetNode())
	if err != nil {
		return nil, toStatus(err)
	}
	out, next := take(pg, evs, logKeys(evs))
	return &apiv1.GetWorkflowLogsResponse{Events: out, NextPageToken: next}, nil
}

// WatchWorkflow sends the workflow, then every change of it and every task event of its
// steps, until it ends.
func (s *WorkflowServer) WatchWorkflow(req *apiv1.WatchWorkflowRequest, stream apiv1.WorkflowService_WatchWorkflowServer) error {
	ctx := stream.Context()
	id := req.GetId()
	evs, evRev, err := s.Workflows.Logs(ctx, id, "")
	if err != nil {
		return toStatus(err)
	}
	wf, err := s.Workflows.Get(ctx, id)
	if err != nil {
		return toStatus(err)
	}
	for _, ev := range evs {
		if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Event{Event: ev}}); err != nil {
			return err
		}
	}
	if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Workflow{Workflow: wf}}); err != nil {
		return err
	}
	if workflows.Terminal(wf.GetState()) {
		return nil
	}
	last := wf
	for {
		done, lastEv, err := s.watchWorkflow(ctx, stream, id, evRev, &last)
		if done || !errors.Is(err, store.ErrCompacted) {
			return err
		}
		// This replica skipped revisions (it installed a snapshot from the leader): send
		// the events the watch missed (written once, so their ModRevision tells) and the
		// workflow if it changed, then watch again.
		rev, err := s.sendEventsAfter(ctx, stream, id, lastEv)
		if err != nil {
			return err
		}
		cur, err := s.Workflows.Get(ctx, id)
		if err != nil {
			return toStatus(err)
		}
		if !proto.Equal(cur, last) {
			last = cur
			if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Workflow{Workflow: cur}}); err != nil {
				return err
			}
		}
		if workflows.Terminal(cur.GetState()) {
			return nil
		}
		evRev = rev
	}
}

// sendEventsAfter sends the workflow's events written after revision rev, in time order
// (each is written once, so its ModRevision tells); it returns the store revision it read.
func (s *WorkflowServer) sendEventsAfter(ctx context.Context, stream apiv1.WorkflowService_WatchWorkflowServer, id string, rev int64) (int64, error) {
	kvs, listRev, err := s.Store.List(ctx, workflows.EventsPrefix(id, ""))
	if err != nil {
		return 0, toStatus(err)
	}
	var missed []*taskv1.TaskEvent
	for _, kv := range kvs {
		var te taskv1.TaskEvent
		if kv.ModRevision > rev && proto.Unmarshal(kv.Value, &te) == nil {
			missed = append(missed, &te)
		}
	}
	slices.SortStableFunc(missed, func(a, b *taskv1.TaskEvent) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) })
	for _, te := range missed {
		if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Event{Event: te}}); err != nil {
			return 0, err
		}
	}
	return listRev, nil
}

// watchWorkflow streams a workflow's events and changes after revision evRev until it ends
// (done), a watch fails (store.ErrCompacted: lastEv is the revision of the last event
// delivered) or ctx ends. last is the workflow the client saw last.
func (s *WorkflowServer) watchWorkflow(ctx context.Context, stream apiv1.WorkflowService_WatchWorkflowServer, id string, evRev int64, last **apiv1.Workflow) (done bool, lastEv int64, err error) {
	lastEv = evRev
	fail := func(err error) (bool, int64, error) {
		if errors.Is(err, store.ErrCompacted) {
			return false, lastEv, err
		}
		return true, lastEv, toStatus(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evCh, err := s.Store.Watch(wctx, workflows.EventsPrefix(id, ""), evRev)
	if err != nil {
		return fail(err)
	}
	// The workflow was read after the events, so its revision is at least evRev.
	wfCh, err := s.Store.Watch(wctx, workflows.Prefix+id, evRev)
	if err != nil {
		return fail(err)
	}
	for {
		select {
		case <-ctx.Done():
			return true, lastEv, ctx.Err()
		case ev, ok := <-evCh:
			if !ok {
				return true, lastEv, ctx.Err()
			}
			if ev.Err != nil {
				return fail(ev.Err)
			}
			var te taskv1.TaskEvent
			if ev.Type == store.EventPut && proto.Unmarshal(ev.KV.Value, &te) == nil {
				if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Event{Event: &te}}); err != nil {
					return true, lastEv, err
				}
			}
			lastEv = ev.Revision
		case ev, ok := <-wfCh:
			if !ok {
				return true, lastEv, ctx.Err()
			}
			if ev.Err != nil {
				return fail(ev.Err)
			}
			if ev.KV.Key != workflows.Prefix+id || ev.Type != store.EventPut {
				continue
			}
			cur, err := s.Workflows.Get(ctx, id)
			if err != nil {
				return true, lastEv, toStatus(err)
			}
			if proto.Equal(cur, *last) {
				continue
			}
			*last = cur
			if workflows.Terminal(cur.GetState()) {
				// The stream ends with this state: the events written before it that the
				// events' watch has not delivered yet go first (the two watches are read
				// in no particular order).
				if _, err := s.sendEventsAfter(ctx, stream, id, lastEv); err != nil {
					return true, lastEv, err
				}
			}
			if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Workflow{Workflow: cur}}); err != nil {
				return true, lastEv, err
			}
			if workflows.Terminal(cur.GetState()) {
				return true, lastEv, nil
			}
		}
	}
}

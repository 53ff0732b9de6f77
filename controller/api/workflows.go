package api

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

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
}

func (s *WorkflowServer) CreateWorkflow(ctx context.Context, req *apiv1.CreateWorkflowRequest) (*apiv1.CreateWorkflowResponse, error) {
	id, _ := IdentityFrom(ctx)
	wf, err := s.Workflows.Create(ctx, req.GetSpec(), id.Name)
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

func (s *WorkflowServer) GetWorkflowLogs(ctx context.Context, req *apiv1.GetWorkflowLogsRequest) (*apiv1.GetWorkflowLogsResponse, error) {
	evs, _, err := s.Workflows.Logs(ctx, req.GetId(), req.GetNode())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.GetWorkflowLogsResponse{Events: evs}, nil
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
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evCh, err := s.Store.Watch(wctx, workflows.EventsPrefix(id, ""), evRev)
	if err != nil {
		return toStatus(err)
	}
	// The workflow was read after the events, so its revision is at least evRev.
	wfCh, err := s.Store.Watch(wctx, workflows.Prefix+id, evRev)
	if err != nil {
		return toStatus(err)
	}
	last := wf
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-evCh:
			if !ok {
				return ctx.Err()
			}
			if ev.Err != nil {
				return toStatus(ev.Err)
			}
			var te taskv1.TaskEvent
			if ev.Type == store.EventPut && proto.Unmarshal(ev.KV.Value, &te) == nil {
				if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Event{Event: &te}}); err != nil {
					return err
				}
			}
		case ev, ok := <-wfCh:
			if !ok {
				return ctx.Err()
			}
			if ev.Err != nil {
				return toStatus(ev.Err)
			}
			if ev.KV.Key != workflows.Prefix+id || ev.Type != store.EventPut {
				continue
			}
			cur, err := s.Workflows.Get(ctx, id)
			if err != nil {
				return toStatus(err)
			}
			if proto.Equal(cur, last) {
				continue
			}
			last = cur
			if err := stream.Send(&apiv1.WatchWorkflowResponse{Update: &apiv1.WatchWorkflowResponse_Workflow{Workflow: cur}}); err != nil {
				return err
			}
			if workflows.Terminal(cur.GetState()) {
				return nil
			}
		}
	}
}

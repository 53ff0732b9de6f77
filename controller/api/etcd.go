package api

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// saveTimeout bounds a SaveEtcdSnapshot: the task (etcd_snapshot's step timeout) and the
// upload.
const saveTimeout = 30 * time.Minute

// SaveEtcdSnapshot implements apiv1.WorkflowServiceServer: an etcd_snapshot task on a
// control plane that also uploads the snapshot to this replica, relayed to the caller as it
// arrives.
func (s *WorkflowServer) SaveEtcdSnapshot(req *apiv1.SaveEtcdSnapshotRequest, stream apiv1.WorkflowService_SaveEtcdSnapshotServer) error {
	ctx, cancel := context.WithTimeout(stream.Context(), saveTimeout)
	defer cancel()
	if n := req.GetNode(); n != "" {
		if err := nodeName("node", n); err != nil {
			return invalid(err)
		}
	}
	name := req.GetName()
	if name == "" {
		name = "saved-" + strings.ToLower(time.Now().UTC().Format("20060102t150405"))
	}
	if !snapshotNameRE.MatchString(name) {
		return invalid(&fieldError{"name", fmt.Sprintf("%q is not a snapshot name: give 1-63 characters of a-z, 0-9 and -", name)})
	}
	node, err := s.snapshotNode(ctx, req.GetNode())
	if err != nil {
		return err
	}
	t, err := s.Transfers.Open(ctx, node)
	if err != nil {
		return Errorf(codes.ResourceExhausted, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, nil, err.Error())
	}
	defer s.Transfers.Close(t)
	rec, err := s.Workflows.CreateTask(ctx, &taskv1.Task{Node: node, Timeout: durationpb.New(saveTimeout),
		Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_EtcdSnapshot{EtcdSnapshot: &taskv1.EtcdSnapshotSpec{Name: name, UploadAddress: s.Address, TransferId: t.ID}}}})
	if err != nil {
		return toStatus(err)
	}
	id := rec.GetTask().GetId()
	ended := make(chan *apiv1.TaskRecord, 1)
	go func() {
		r, err := s.Tasks.Wait(ctx, id)
		if r == nil {
			// No record to tell (the store failed, or the caller left): a failure.
			r = &apiv1.TaskRecord{State: taskv1.TaskState_TASK_STATE_UNSPECIFIED, Result: &taskv1.TaskResult{Error: &taskv1.TaskError{Reason: "UNKNOWN", Message: fmt.Sprint("waiting for the task: ", err)}}}
		}
		ended <- r
	}()
	finished := false
	defer func() {
		if !finished {
			// Nobody waits for it any more.
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer ccancel()
			_, _ = s.Tasks.Cancel(cctx, id)
		}
	}()
	taskFailed := func(r *apiv1.TaskRecord) error {
		e := r.GetResult().GetError()
		return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_TASK_FAILED, map[string]string{"task": id, "node": node},
			fmt.Sprintf("the snapshot task %s on %s %s: %s (%s)", id, node, strings.ToLower(strings.TrimPrefix(r.GetState().String(), "TASK_STATE_")), e.GetMessage(), e.GetReason()))
	}
	for {
		select {
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case <-t.Failed:
			_, _, err := t.Result()
			return Errorf(codes.Aborted, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, map[string]string{"task": id}, "the upload from "+node+" failed: "+err.Error())
		case r := <-ended:
			if r.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
				finished = tasks.Terminal(r.GetState())
				return taskFailed(r)
			}
			// Succeeded: its upload ended before it did; what is left is in t.Data.
			ended <- r
		case b, ok := <-t.Data:
			if ok {
				if err := stream.Send(&apiv1.SaveEtcdSnapshotResponse{Msg: &apiv1.SaveEtcdSnapshotResponse_Data{Data: b}}); err != nil {
					return err
				}
				continue
			}
			sum, size, _ := t.Result()
			var r *apiv1.TaskRecord
			select {
			case r = <-ended:
			case <-ctx.Done():
				return toStatus(ctx.Err())
			}
			if r.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
				return taskFailed(r)
			}
			out := r.GetResult().GetOutputs()
			rev, _ := strconv.ParseInt(out["revision"], 10, 64)
			if strings.TrimPrefix(out["sha256"], "sha256:") != sum {
				return Errorf(codes.DataLoss, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, nil, fmt.Sprintf("the snapshot on %s has SHA-256 %s, the one sent %s", node, out["sha256"], sum))
			}
			finished = true
			return stream.Send(&apiv1.SaveEtcdSnapshotResponse{Msg: &apiv1.SaveEtcdSnapshotResponse_Done{Done: &apiv1.SavedEtcdSnapshot{
				Node: node, Name: name, Sha256: sum, Size: uint64(size), Revision: rev}}})
		}
	}
}

// snapshotNode is the control plane to take a snapshot on: the one asked for, else the first
// of the cluster's whose agent is connected.
func (s *WorkflowServer) snapshotNode(ctx context.Context, asked string) (string, error) {
	cl, err := s.Workflows.Cluster(ctx)
	if err != nil {
		return "", toStatus(err)
	}
	var cps []string
	for _, n := range cl.GetNodes() {
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			cps = append(cps, n.GetName())
		}
	}
	if len(cps) == 0 {
		return "", toStatus(fmt.Errorf("%w: no cluster with a control plane is recorded", workflows.ErrWrongState))
	}
	if asked != "" {
		if !slices.Contains(cps, asked) {
			return "", invalid(&fieldError{"node", fmt.Sprintf("%s is not a control plane of the cluster (its control planes: %s)", asked, strings.Join(cps, ", "))})
		}
		return asked, nil
	}
	for _, n := range cps {
		if nd, _, err := s.Nodes.Get(ctx, n); err == nil && nd.GetState() == apiv1.NodeState_NODE_STATE_READY {
			return n, nil
		}
	}
	return "", toStatus(fmt.Errorf("%w: no control plane's agent is connected (%s)", workflows.ErrWrongState, strings.Join(cps, ", ")))
}

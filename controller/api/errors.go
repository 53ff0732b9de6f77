package api

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/controller/kubeconfigs"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/tokens"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/clusterspec"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// ErrorDomain is the ErrorInfo domain of every Deckhand error.
const ErrorDomain = "deckhand.dev"

// Errorf builds a status with an ErrorInfo detail.
func Errorf(code codes.Code, reason apiv1.ErrorReason, meta map[string]string, msg string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason.String(), Domain: ErrorDomain, Metadata: meta}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// Reason extracts the ErrorReason of a status error (UNSPECIFIED when absent).
func Reason(err error) apiv1.ErrorReason {
	st, ok := status.FromError(err)
	if !ok {
		return apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return apiv1.ErrorReason(apiv1.ErrorReason_value[info.GetReason()])
		}
	}
	return apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// toStatus maps a domain or store error to a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var taskFailed *kubeconfigs.TaskFailedError
	switch {
	case errors.Is(err, nodes.ErrNotFound):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, map[string]string{"kind": "node"}, msg)
	case errors.Is(err, nodes.ErrNameTaken):
		return Errorf(codes.AlreadyExists, apiv1.ErrorReason_ERROR_REASON_NODE_NAME_TAKEN, nil, msg)
	case errors.Is(err, nodes.ErrInvalidName):
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": "node_name"}, msg)
	case errors.Is(err, tokens.ErrInvalid):
		return Errorf(codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_TOKEN_INVALID, nil, msg)
	case errors.Is(err, tokens.ErrNotFound):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, map[string]string{"kind": "token"}, msg)
	case errors.Is(err, tokens.ErrBadRequest):
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, nil, msg)
	case errors.Is(err, tasks.ErrNotFound):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, map[string]string{"kind": "task"}, msg)
	case errors.Is(err, tasks.ErrExists):
		return Errorf(codes.AlreadyExists, apiv1.ErrorReason_ERROR_REASON_ALREADY_EXISTS, map[string]string{"kind": "task"}, msg)
	case errors.Is(err, tasks.ErrInvalid):
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, nil, msg)
	case errors.Is(err, workflows.ErrExists):
		return Errorf(codes.AlreadyExists, apiv1.ErrorReason_ERROR_REASON_ALREADY_EXISTS, map[string]string{"kind": "workflow"}, msg)
	case errors.Is(err, workflows.ErrNotFound):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, map[string]string{"kind": "workflow"}, msg)
	case errors.Is(err, workflows.ErrNodeLocked):
		meta := map[string]string{}
		var le *workflows.LockedError
		if errors.As(err, &le) {
			meta["node"], meta["workflow"] = le.Node, le.Workflow
		}
		return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_NODE_LOCKED, meta, msg)
	case errors.Is(err, workflows.ErrWrongState):
		return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_WRONG_STATE, nil, msg)
	case errors.Is(err, workflows.ErrInvalid), errors.Is(err, clusterspec.ErrInvalid):
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, nil, msg)
	case errors.Is(err, kubeconfigs.ErrNoCluster):
		return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_NO_CLUSTER, nil, msg)
	case errors.Is(err, kubeconfigs.ErrNoSigner):
		return Errorf(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NODE_NOT_CONNECTED, nil, msg)
	case errors.As(err, &taskFailed):
		return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_TASK_FAILED,
			map[string]string{"task": taskFailed.TaskID, "node": taskFailed.Node, "task_reason": taskFailed.Err.GetReason()}, msg)
	case errors.Is(err, store.ErrNotFound):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, nil, msg)
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrFenced):
		return Errorf(codes.Aborted, apiv1.ErrorReason_ERROR_REASON_CONFLICT, nil, msg)
	case errors.Is(err, store.ErrNoLeader):
		return Errorf(codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_NO_QUORUM, nil, msg)
	case errors.Is(err, store.ErrCompacted):
		return Errorf(codes.OutOfRange, apiv1.ErrorReason_ERROR_REASON_COMPACTED, nil, msg)
	case errors.Is(err, store.ErrInvalid):
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, nil, msg)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	return status.Error(codes.Internal, msg)
}

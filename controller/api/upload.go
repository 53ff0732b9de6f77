package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"

	"github.com/deckhandhq/deckhand/controller/transfers"
	"github.com/deckhandhq/deckhand/internal/pki"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// Upload implements agentv1.AgentServiceServer: an agent sends what its task made to the
// caller waiting on this replica (see package transfers). Only the node the transfer was
// made for may send it, once, within transfers' bounds, and its SHA-256 must match.
func (s *AgentServer) Upload(stream agentv1.AgentService_UploadServer) error {
	ctx := stream.Context()
	id, ok := IdentityFrom(ctx)
	if !ok || id.Role != pki.RoleAgent {
		return Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, nil, "only agents upload")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if tid := first.GetTransferId(); tid == "" || len(tid) > 64 {
		return invalid(&fieldError{"transfer_id", "give the transfer ID of the task's upload_address, in the first message"})
	}
	if err := s.checkIdentity(ctx, id); err != nil {
		return err
	}
	t, err := s.Transfers.Claim(first.GetTransferId(), id.Name)
	switch {
	case errors.Is(err, transfers.ErrUnknown):
		return Errorf(codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND, nil, err.Error())
	case errors.Is(err, transfers.ErrNotYours):
		return Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"node": id.Name}, err.Error())
	case err != nil:
		return Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, nil, err.Error())
	}
	sum := sha256.New()
	var n int64
	fail := func(code codes.Code, msg string) error {
		t.Fail(errors.New(msg))
		return Errorf(code, apiv1.ErrorReason_ERROR_REASON_UNSPECIFIED, nil, msg)
	}
	for m := first; ; {
		if d := m.GetData(); len(d) > 0 {
			if len(d) > transfers.MaxChunk {
				return fail(codes.InvalidArgument, fmt.Sprintf("data: %d bytes in one message, at most %d", len(d), transfers.MaxChunk))
			}
			if n += int64(len(d)); n > transfers.MaxBytes {
				return fail(codes.ResourceExhausted, fmt.Sprintf("more than %d bytes", int64(transfers.MaxBytes)))
			}
			sum.Write(d)
			if err := t.Send(ctx, d); err != nil {
				return fail(codes.Canceled, err.Error())
			}
		}
		if want := m.GetSha256(); want != "" {
			got := hex.EncodeToString(sum.Sum(nil))
			if got != want {
				return fail(codes.DataLoss, fmt.Sprintf("the data's SHA-256 is %s, the uploader says %s", got, want))
			}
			t.Finish(got, n)
			return stream.SendAndClose(&agentv1.UploadResponse{})
		}
		if m, err = stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return fail(codes.InvalidArgument, "the upload ended without its SHA-256")
			}
			return fail(codes.Canceled, "the upload broke off: "+err.Error())
		}
	}
}

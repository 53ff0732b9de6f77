package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/backoff"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// CreateWorkflow starts a workflow under a new ID (NewWorkflowID), so it is retried on
// another controller like a read: when the controller that took it dies before answering,
// the same request again returns the workflow it made, never a second one.
func (c *Client) CreateWorkflow(ctx context.Context, spec *apiv1.WorkflowSpec) (*apiv1.Workflow, error) {
	resp, err := c.Workflows().CreateWorkflow(ctx, &apiv1.CreateWorkflowRequest{Spec: spec, Id: NewWorkflowID()})
	if err != nil {
		return nil, err
	}
	return resp.GetWorkflow(), nil
}

// NewWorkflowID makes a workflow ID for CreateWorkflowRequest.Id: "wf-" and 12 random
// lower-case letters and digits.
func NewWorkflowID() string { return "wf-" + strings.ToLower(rand.Text()[:12]) }

// errWatchEnded: the stream closed (its controller stopped) before the workflow ended.
var errWatchEnded = errors.New("the watch ended before the workflow did")

// Done reports whether a workflow ended: succeeded, failed or cancelled.
func Done(wf *apiv1.Workflow) bool {
	switch wf.GetState() {
	case apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED, apiv1.WorkflowState_WORKFLOW_STATE_FAILED, apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED:
		return true
	}
	return false
}

// WatchWorkflow follows workflow id until it ends and returns its last state (look at
// its State and Error: a failed workflow is not an error of the watch). onStep, when not
// nil, is called with each step as first seen and again each time its state or attempt
// changes. When the controller serving the watch goes away, the watch continues on
// another; it fails when no controller answered for Options.RetryFor, or ctx ends.
func (c *Client) WatchWorkflow(ctx context.Context, id string, onStep func(wf *apiv1.Workflow, step *apiv1.Step)) (*apiv1.Workflow, error) {
	seen := map[string]string{}
	var last *apiv1.Workflow
	lastHeard := c.now()
	for attempt := 0; ; attempt++ {
		wf, err := c.watchOnce(ctx, id, func(wf *apiv1.Workflow) {
			last, lastHeard, attempt = wf, c.now(), 0
			for _, s := range wf.GetSteps() {
				key := fmt.Sprintf("%s/%d", s.GetState(), s.GetAttempts())
				if seen[s.GetName()] != key {
					seen[s.GetName()] = key
					if onStep != nil {
						onStep(wf, s)
					}
				}
			}
		})
		if wf != nil && Done(wf) {
			return wf, nil
		}
		if err == nil {
			err = errWatchEnded
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		code := status.Code(err)
		var ue *UnreachableError
		again := code == codes.Unavailable || code == codes.Canceled || code == codes.Aborted || code == codes.Internal || errors.As(err, &ue) || errors.Is(err, errWatchEnded)
		if !again || c.now().Sub(lastHeard) > c.retryFor {
			return last, fmt.Errorf("watch workflow %s: %w", id, err)
		}
		if !backoff.Sleep(ctx, retryBackoff(attempt)) {
			return last, ctx.Err()
		}
	}
}

// watchOnce follows the workflow on one stream; it returns the last state seen.
func (c *Client) watchOnce(ctx context.Context, id string, update func(*apiv1.Workflow)) (*apiv1.Workflow, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Workflows().WatchWorkflow(ctx, &apiv1.WatchWorkflowRequest{Id: id})
	if err != nil {
		return nil, err
	}
	var last *apiv1.Workflow
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return last, nil
		}
		if err != nil {
			return last, err
		}
		if wf := msg.GetWorkflow(); wf != nil {
			last = wf
			update(wf)
			if Done(wf) {
				return wf, nil
			}
		}
	}
}

// WorkflowLogs returns the log and progress events of a workflow's tasks in time order,
// only node's when node is not empty.
func (c *Client) WorkflowLogs(ctx context.Context, id, node string) ([]*taskv1.TaskEvent, error) {
	var out []*taskv1.TaskEvent
	for token := ""; ; {
		resp, err := c.Workflows().GetWorkflowLogs(ctx, &apiv1.GetWorkflowLogsRequest{Id: id, Node: node, PageToken: token})
		if err != nil {
			return out, err
		}
		out = append(out, resp.GetEvents()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

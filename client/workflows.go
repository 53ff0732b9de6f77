package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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

// ErrWatchLost is wrapped in the error of Watch (and WatchWorkflow) when no controller
// answered for Options.RetryFor: the watch gave up, the workflow itself goes on.
var ErrWatchLost = errors.New("lost the controllers")

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

// WatchHandlers receive what Watch sees. Any of them may be nil; they are called one at a
// time, on the goroutine that called Watch, in the order the controller sent what they
// are given.
type WatchHandlers struct {
	// Workflow is called with each new state of the workflow. A state equal to the last
	// one delivered (a new stream after a failover starts with the current state) is not
	// delivered again.
	Workflow func(wf *apiv1.Workflow)
	// Step is called, after Workflow, with each step as first seen and again each time
	// its state or attempt changes.
	Step func(wf *apiv1.Workflow, step *apiv1.Step)
	// Event is called with each event of the workflow's tasks (log lines, progress, task
	// states), each exactly once: a stream starts with every event recorded so far, so
	// after a failover the events already delivered are skipped and those recorded while
	// no stream was open come first, in time order; then new events as they are recorded.
	Event func(ev *taskv1.TaskEvent)
	// Reconnect is called when a stream that delivered something broke and the watch goes
	// on with a new one (on another controller when that one is gone), with why it broke.
	Reconnect func(err error)
}

// WatchWorkflow follows workflow id until it ends and returns its last state (look at
// its State and Error: a failed workflow is not an error of the watch). onStep, when not
// nil, is called with each step as first seen and again each time its state or attempt
// changes. It is Watch with only WatchHandlers.Step.
func (c *Client) WatchWorkflow(ctx context.Context, id string, onStep func(wf *apiv1.Workflow, step *apiv1.Step)) (*apiv1.Workflow, error) {
	return c.Watch(ctx, id, WatchHandlers{Step: onStep})
}

// Watch follows workflow id until it ends, calling h's handlers with its states, step
// changes and task events, and returns its last state (look at its State and Error: a
// failed workflow is not an error of the watch). When the controller serving the watch
// goes away, the watch continues on another without repeating or losing anything (see
// WatchHandlers). It fails when the controllers refuse it (the workflow does not exist:
// codes.NotFound), when no controller answered for Options.RetryFor (the error wraps
// ErrWatchLost), or when ctx ends; it then returns the last state seen too.
func (c *Client) Watch(ctx context.Context, id string, h WatchHandlers) (*apiv1.Workflow, error) {
	w := &watcher{h: h, steps: map[string]string{}}
	if h.Event != nil {
		w.events = &eventDedup{delivered: map[eventKey]int{}}
	}
	err := c.follow(ctx, "watch workflow "+id, h.Reconnect, func(ctx context.Context) (bool, bool, error) {
		heard, err := c.watchOnce(ctx, id, w)
		return heard, Done(w.last), err
	})
	return w.last, err
}

// follow runs once (one stream) again until it says the thing followed ended (done),
// on another controller when its controller went away: it fails when the controllers refuse
// it, when no controller answered for Options.RetryFor (ErrWatchLost), or when ctx ends.
// reconnect, when not nil, is told why a stream that delivered something broke.
func (c *Client) follow(ctx context.Context, what string, reconnect func(error), once func(context.Context) (heard, done bool, err error)) error {
	lastHeard := c.now()
	for attempt := 0; ; attempt++ {
		heard, done, err := once(ctx)
		if heard {
			lastHeard, attempt = c.now(), 0
		}
		if done {
			return nil
		}
		if err == nil {
			err = errWatchEnded
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *UnreachableError
		switch status.Code(err) {
		case codes.Unavailable, codes.Canceled, codes.Aborted, codes.Internal, codes.DeadlineExceeded:
		default:
			if !errors.As(err, &ue) && !errors.Is(err, errWatchEnded) {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if c.now().Sub(lastHeard) > c.retryFor {
			return fmt.Errorf("%s: %w for %v: %w", what, ErrWatchLost, c.retryFor.Round(time.Millisecond), err)
		}
		if heard && reconnect != nil {
			reconnect(err)
		}
		if !backoff.Sleep(ctx, retryBackoff(attempt)) {
			return ctx.Err()
		}
	}
}

// eventKey identifies a task event by its content (task ID, time and what happened).
type eventKey [sha256.Size]byte

// watcher is the state of one Watch across its streams.
type watcher struct {
	h      WatchHandlers
	last   *apiv1.Workflow   // the last state delivered
	steps  map[string]string // step name → "state/attempts" delivered
	events *eventDedup       // nil without an Event handler
}

// eventDedup delivers each recorded event once across streams. Each stream sends every
// recorded event once, so the n-th copy of an event on a stream is new when fewer than n
// were delivered: an event recorded twice is delivered twice, a replayed one once.
type eventDedup struct {
	delivered map[eventKey]int // by content
	onStream  map[eventKey]int // copies seen on the current stream
}

// newStream starts counting a stream's copies.
func (d *eventDedup) newStream() { d.onStream = map[eventKey]int{} }

// fresh says whether ev is to be delivered (and counts it as delivered).
func (d *eventDedup) fresh(ev *taskv1.TaskEvent) bool {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil { // it was just unmarshalled; deliver rather than lose it
		return true
	}
	k := eventKey(sha256.Sum256(b))
	d.onStream[k]++
	if d.onStream[k] <= d.delivered[k] {
		return false
	}
	d.delivered[k]++
	return true
}

func (w *watcher) workflow(wf *apiv1.Workflow) {
	if proto.Equal(wf, w.last) {
		return
	}
	w.last = wf
	if w.h.Workflow != nil {
		w.h.Workflow(wf)
	}
	for _, s := range wf.GetSteps() {
		key := fmt.Sprintf("%s/%d", s.GetState(), s.GetAttempts())
		if w.steps[s.GetName()] != key {
			w.steps[s.GetName()] = key
			if w.h.Step != nil {
				w.h.Step(wf, s)
			}
		}
	}
}

func (w *watcher) event(ev *taskv1.TaskEvent) {
	if w.events != nil && w.events.fresh(ev) {
		w.h.Event(ev)
	}
}

// watchOnce follows the workflow on one stream until it ends, the stream breaks or ctx
// ends; heard says whether the stream delivered anything.
func (c *Client) watchOnce(ctx context.Context, id string, w *watcher) (heard bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Workflows().WatchWorkflow(ctx, &apiv1.WatchWorkflowRequest{Id: id})
	if err != nil {
		return false, err
	}
	if w.events != nil {
		w.events.newStream()
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return heard, nil
		}
		if err != nil {
			return heard, err
		}
		heard = true
		switch u := msg.GetUpdate().(type) {
		case *apiv1.WatchWorkflowResponse_Event:
			w.event(u.Event)
		case *apiv1.WatchWorkflowResponse_Workflow:
			w.workflow(u.Workflow)
			if Done(u.Workflow) {
				return true, nil
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

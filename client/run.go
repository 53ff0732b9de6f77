package client

import (
	"context"
	"crypto/rand"
	"io"
	"strings"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// RunHandlers receive a run's progress (RunTasks); each may be nil.
type RunHandlers struct {
	// Selected is called once with the nodes the selector picked.
	Selected func(nodes []string)
	// Progress is called with each summary the controller sends.
	Progress func(*apiv1.RunTasksSummary)
	// Ended is called once per node whose task ended, Skipped once per node given no task.
	Ended   func(*apiv1.TaskRecord)
	Skipped func(*apiv1.SkippedNode)
	// Reconnect is told why a stream that delivered something broke.
	Reconnect func(error)
}

// NewRunID makes a run ID for RunTasks.
func NewRunID() string { return "run-" + strings.ToLower(rand.Text()[:12]) }

// RunTasks runs req's task on the nodes it selects and follows the run to its end: when its
// controller goes away it sends the same request (with the same ID, one is chosen when req
// has none) to another, which resumes the run, and each node's end is delivered once. It
// returns the last summary; nodes that failed are not an error of the call.
func (c *Client) RunTasks(ctx context.Context, req *apiv1.RunTasksRequest, h RunHandlers) (*apiv1.RunTasksSummary, error) {
	if req.GetId() == "" {
		req.Id = NewRunID()
	}
	var last *apiv1.RunTasksSummary
	done := map[string]bool{} // nodes delivered to Ended or Skipped
	selected := false
	err := c.follow(ctx, "run "+req.GetId(), h.Reconnect, func(ctx context.Context) (bool, bool, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Tasks().RunTasks(ctx, req)
		if err != nil {
			return false, false, err
		}
		heard := false
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return heard, last.GetDone(), nil
			}
			if err != nil {
				return heard, false, err
			}
			heard = true
			if !selected && len(msg.GetNodes()) > 0 {
				selected = true
				if h.Selected != nil {
					h.Selected(msg.GetNodes())
				}
			}
			for _, s := range msg.GetSkipped() {
				if !done[s.GetNode()] {
					done[s.GetNode()] = true
					if h.Skipped != nil {
						h.Skipped(s)
					}
				}
			}
			for _, rec := range msg.GetEnded() {
				if n := rec.GetTask().GetNode(); !done[n] {
					done[n] = true
					if h.Ended != nil {
						h.Ended(rec)
					}
				}
			}
			if s := msg.GetSummary(); s != nil {
				last = s
				if h.Progress != nil {
					h.Progress(s)
				}
				if s.GetDone() {
					return true, true, nil
				}
			}
		}
	})
	return last, err
}

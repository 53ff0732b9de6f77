package client

import (
	"context"
	"io"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// TaskDone reports whether a task ended: succeeded, failed or cancelled.
func TaskDone(rec *apiv1.TaskRecord) bool {
	switch rec.GetState() {
	case taskv1.TaskState_TASK_STATE_SUCCEEDED, taskv1.TaskState_TASK_STATE_FAILED, taskv1.TaskState_TASK_STATE_CANCELLED:
		return true
	}
	return false
}

// WatchTask follows task id until it ends and returns its last record (look at its State:
// a failed task is not an error of the watch). onEvent, when not nil, is called with each
// of its events (log lines, progress) exactly once, across failovers as Watch does, and
// reconnect with why a stream that delivered something broke. It fails as Watch does.
func (c *Client) WatchTask(ctx context.Context, id string, onEvent func(*taskv1.TaskEvent), reconnect func(error)) (*apiv1.TaskRecord, error) {
	var last *apiv1.TaskRecord
	d := &eventDedup{delivered: map[eventKey]int{}}
	err := c.follow(ctx, "watch task "+id, reconnect, func(ctx context.Context) (bool, bool, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Tasks().WatchTask(ctx, &apiv1.WatchTaskRequest{Id: id})
		if err != nil {
			return false, false, err
		}
		d.newStream()
		heard := false
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return heard, TaskDone(last), nil
			}
			if err != nil {
				return heard, TaskDone(last), err
			}
			heard = true
			if ev := msg.GetEvent(); ev != nil && d.fresh(ev) && onEvent != nil {
				onEvent(ev)
			}
			if rec := msg.GetTask(); rec != nil {
				last = rec
				if TaskDone(rec) {
					return true, true, nil
				}
			}
		}
	})
	return last, err
}

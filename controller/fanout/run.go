package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Message bounds: a run's progress goes out at most every flushEvery, and a message
// carries at most maxBatch ended tasks or about maxBatchBytes of them.
const (
	flushEvery    = 200 * time.Millisecond
	maxBatch      = 500
	maxBatchBytes = 1 << 20
)

// Backend is what a run needs from the controller.
type Backend struct {
	Store store.Store
	// Create writes a node's task (workflows.Service.CreateTask: refused on a node a
	// workflow holds, the recorded task for an ID already used by the same task).
	Create func(context.Context, *taskv1.Task) (*apiv1.TaskRecord, error)
	// Cancel ends a task at the deadline, with why.
	Cancel func(ctx context.Context, id, reason, message string) (*apiv1.TaskRecord, error)
	// View is what the caller may see of a record (redacted, without its artifact).
	View func(*apiv1.TaskRecord) *apiv1.TaskRecord
	Now  func() time.Time
}

// Request is a planned run.
type Request struct {
	ID string
	// Selected lists every selected node; Run those to start, in order; Skipped the rest.
	Selected    []string
	Run         []string
	Skipped     []Skip
	Spec        *taskv1.TaskSpec
	DryRun      bool
	Concurrency int
	Timeout     time.Duration
}

type created struct {
	node   string
	rec    *apiv1.TaskRecord
	err    error
	cancel bool // the answer of a cancel, not of a create
}

// Run starts the nodes' tasks, at most req.Concurrency at once, follows them in the store
// until every node ended or was skipped, and sends the progress: a first message with the
// selection, one at most every 200 ms while something changed, and a last one with
// Summary.Done. At the deadline the nodes not started are skipped and the running tasks
// cancelled. When ctx ends (the caller went away) the tasks started run on; the nodes not
// started are not.
func Run(ctx context.Context, b Backend, req Request, send func(*apiv1.RunTasksResponse) error) error {
	start := b.Now()
	ctx, cancel := context.WithCancel(ctx)
	// No goroutine of the run outlives it: a create may still be answering when its task's
	// end came through the store.
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	tr := NewTracker(req.ID, req.Run, req.Skipped)

	records := make(chan *apiv1.TaskRecord, 256)
	put := func(kv *store.KV) {
		if rec, err := tasks.Decode(kv); err == nil {
			select {
			case records <- rec:
			case <-ctx.Done():
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		store.Follow(ctx, b.Store, tasks.Prefix+req.ID+".", store.Follower{
			Listed: func(kvs []*store.KV) {
				for _, kv := range kvs {
					put(kv)
				}
			},
			Event: func(ev store.Event) {
				if ev.Type == store.EventPut {
					put(ev.KV)
				}
			},
		})
	}()

	// Every create and cancel answers on results, which holds one per running node, so
	// none of their goroutines ever blocks.
	results := make(chan created, req.Concurrency+len(req.Run))
	expired := false
	creating := map[string]bool{} // created, not answered yet
	startNext := func() {
		if expired {
			return
		}
		for _, n := range tr.Next(req.Concurrency) {
			creating[n] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec, err := b.Create(ctx, &taskv1.Task{Id: TaskID(req.ID, n), Node: n, Spec: req.Spec, DryRun: req.DryRun})
				results <- created{node: n, rec: rec, err: err}
			}()
		}
	}
	// At most Concurrency cancels are written at once (a resumed run may find many more
	// nodes running than it started).
	cancels := make(chan struct{}, req.Concurrency)
	cancelTask := func(n string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case cancels <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-cancels }()
			rec, err := b.Cancel(ctx, TaskID(req.ID, n), ReasonDeadline, fmt.Sprintf("cancelled: the run's timeout (%s) passed before the task ended", req.Timeout))
			if err != nil {
				err = fmt.Errorf("the run's timeout (%s) passed and the task could not be cancelled: %w", req.Timeout, err)
			}
			results <- created{node: n, rec: rec, err: err, cancel: true}
		}()
	}

	msg := &apiv1.RunTasksResponse{Nodes: req.Selected}
	size := 0
	flush := func() error {
		msg.Summary = tr.Summary(b.Now().Sub(start))
		err := send(msg)
		msg, size = &apiv1.RunTasksResponse{}, 0
		return err
	}
	ended := func(rec *apiv1.TaskRecord) error {
		v := b.View(rec)
		msg.Ended = append(msg.Ended, v)
		if size += proto.Size(v); len(msg.Ended) >= maxBatch || size >= maxBatchBytes {
			return flush()
		}
		return nil
	}
	skip := func(node, reason, message string) error {
		if !tr.Skipped(node) {
			return nil
		}
		msg.Skipped = append(msg.Skipped, &apiv1.SkippedNode{Node: node, Reason: reason, Message: message})
		if size += len(message) + len(node); size >= maxBatchBytes {
			return flush()
		}
		return nil
	}

	// The planned skips go with the first messages, a message at most about maxBatchBytes.
	for _, k := range req.Skipped {
		msg.Skipped = append(msg.Skipped, &apiv1.SkippedNode{Node: k.Node, Reason: k.Reason, Message: k.Message})
		if size += len(k.Node) + len(k.Message) + 32; size >= maxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	startNext()
	deadline := time.NewTimer(req.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	dirty := false
	for !tr.Done() {
		var err error
		select {
		case c := <-results:
			dirty = true
			if !c.cancel {
				delete(creating, c.node)
			}
			switch {
			case c.err != nil && ctx.Err() != nil:
				return ctx.Err()
			case c.err != nil && errors.Is(c.err, workflows.ErrNodeLocked):
				err = skip(c.node, ReasonLocked, c.err.Error())
			case c.err != nil && expired:
				err = skip(c.node, ReasonDeadline, c.err.Error())
			case c.err != nil:
				err = skip(c.node, ReasonCreateFailed, c.err.Error())
			case tr.Observe(c.rec):
				err = ended(c.rec)
			case expired && !tasks.Terminal(c.rec.GetState()):
				cancelTask(c.node) // created as the deadline passed
			}
			startNext()
		case rec := <-records:
			if tr.Observe(rec) {
				dirty = true
				err = ended(rec)
				startNext()
			}
		case <-tick.C:
			if dirty {
				dirty = false
				err = flush()
			}
		case <-deadline.C:
			expired, dirty = true, true
			for _, n := range tr.Waiting() {
				if err = skip(n, ReasonDeadline, fmt.Sprintf("not started: the run's timeout (%s) passed first; raise --timeout or --concurrency", req.Timeout)); err != nil {
					break
				}
			}
			for _, n := range tr.Running() {
				if !creating[n] { // one still being created is cancelled when its create answers
					cancelTask(n)
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
	return flush()
}

// Package transfers relays a file an agent uploads (an etcd snapshot) to the caller waiting
// for it on the same controller replica. A transfer lives in this replica's memory only, for
// as long as its caller waits: an agent's upload names it by a random ID the controller put
// in the agent's task, and only the node the task ran on may send it.
package transfers

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
)

// MaxConcurrent bounds the transfers one replica relays at once.
const MaxConcurrent = 4

// MaxChunk bounds one message of an upload.
const MaxChunk = 1 << 20

// MaxBytes bounds a transfer: etcd's largest backend quota (8 GiB) and some.
const MaxBytes = 9 << 30

var (
	// ErrBusy: MaxConcurrent transfers are running.
	ErrBusy = errors.New("too many snapshots are being sent through this controller: try again when one ends")
	// ErrUnknown: no caller waits for this transfer here (it ended, or never was).
	ErrUnknown = errors.New("no transfer by this ID waits on this controller")
	// ErrNotYours: the transfer belongs to another node's task.
	ErrNotYours = errors.New("the transfer is another node's")
	// ErrTaken: the transfer was claimed by an earlier upload.
	ErrTaken = errors.New("the transfer was sent already")
)

// Registry holds this replica's transfers.
type Registry struct {
	mu sync.Mutex
	m  map[string]*Transfer
}

// New returns an empty registry.
func New() *Registry { return &Registry{m: map[string]*Transfer{}} }

// Transfer is one upload a caller waits for.
type Transfer struct {
	ID, Node string
	// Data carries the chunks, closed once the upload ended whole (Sum then says its
	// SHA-256); Failed is closed instead when it did not.
	Data   chan []byte
	Failed chan struct{}
	ctx    context.Context // the caller's: done when it stops waiting

	mu      sync.Mutex
	claimed bool
	Sum     string
	Size    int64
	Err     error
}

// Open makes a transfer for node's upload, alive until ctx ends or Close.
func (r *Registry) Open(ctx context.Context, node string) (*Transfer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) >= MaxConcurrent {
		return nil, ErrBusy
	}
	t := &Transfer{ID: "x-" + rand.Text(), Node: node, Data: make(chan []byte, 4), Failed: make(chan struct{}), ctx: ctx}
	r.m[t.ID] = t
	return t, nil
}

// Close forgets t.
func (r *Registry) Close(t *Transfer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, t.ID)
}

// Claim gives node's upload transfer id, once.
func (r *Registry) Claim(id, node string) (*Transfer, error) {
	r.mu.Lock()
	t := r.m[id]
	r.mu.Unlock()
	if t == nil {
		return nil, ErrUnknown
	}
	if t.Node != node {
		return nil, ErrNotYours
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.claimed {
		return nil, ErrTaken
	}
	t.claimed = true
	return t, nil
}

// Send passes a chunk to the caller, waiting while it is slow; an error once the caller
// stopped waiting or the uploader's ctx ended.
func (t *Transfer) Send(ctx context.Context, b []byte) error {
	select {
	case t.Data <- b:
		return nil
	case <-t.ctx.Done():
		return errors.New("the caller stopped waiting for the snapshot")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Finish ends a whole upload.
func (t *Transfer) Finish(sum string, size int64) {
	t.mu.Lock()
	t.Sum, t.Size = sum, size
	t.mu.Unlock()
	close(t.Data)
}

// Fail ends an upload that did not complete.
func (t *Transfer) Fail(err error) {
	t.mu.Lock()
	t.Err = err
	t.mu.Unlock()
	close(t.Failed)
}

// Result is the SHA-256 and size of a finished upload, or why it failed.
func (t *Transfer) Result() (string, int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Sum, t.Size, t.Err
}

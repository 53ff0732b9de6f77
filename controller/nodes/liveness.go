package nodes

import (
	"context"
	"sync"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Liveness is what the liveness tracker needs of a node record.
type Liveness struct {
	Name     string
	State    apiv1.NodeState
	Enrolled time.Time
}

// LivenessLister lists every node's Liveness, decoding only the records written since its
// previous List (by their revision): the leader looks at every node twice per heartbeat
// interval, and decoding every record, facts and all, each time grew with the fleet.
type LivenessLister struct {
	r *Registry

	mu   sync.Mutex
	gen  uint64
	seen map[string]*livenessAt // by key
	out  []Liveness             // List's answer, reused by the next List
}

type livenessAt struct {
	rev  int64
	gen  uint64 // the List that last saw the record
	view Liveness
}

// NewLivenessLister returns a lister over r's records.
func (r *Registry) NewLivenessLister() *LivenessLister {
	return &LivenessLister{r: r, seen: map[string]*livenessAt{}}
}

// List returns every node's Liveness in name order. The slice is valid until the next List,
// which reuses it, so one caller lists at a time (the leader's liveness pass): it lists
// every node twice per heartbeat interval, and a new slice each time was part of what an
// idle controller allocated most (docs/benchmarks.md).
func (l *LivenessLister) List(ctx context.Context, opts ...store.ReadOption) ([]Liveness, error) {
	kvs, _, err := l.r.st.List(ctx, Prefix, opts...)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	out := l.out[:0]
	for _, kv := range kvs {
		c := l.seen[kv.Key]
		if c == nil || c.rev != kv.ModRevision || kv.ModRevision == 0 {
			n, err := Decode(kv)
			if err != nil {
				return nil, err
			}
			c = &livenessAt{rev: kv.ModRevision, view: Liveness{Name: n.GetName(), State: n.GetState(), Enrolled: n.GetEnrolled().AsTime()}}
			l.seen[kv.Key] = c
		}
		c.gen = l.gen
		out = append(out, c.view)
	}
	if len(l.seen) > len(kvs) { // records deleted since
		for k, c := range l.seen {
			if c.gen != l.gen {
				delete(l.seen, k)
			}
		}
	}
	clear(out[len(out):cap(out)]) // no names of deleted nodes kept
	l.out = out
	return out, nil
}

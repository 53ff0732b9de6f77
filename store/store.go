// Package store defines the storage contract of the controller: a revisioned key-value store
// with compare-and-swap transactions, prefix lists, watches from a revision, and an Elector
// for leadership with a fencing condition. Every backend (store/raftstore, the embedded
// default; store/etcdstore) passes the same contract suite in store/storetest.
//
// Semantics every backend provides:
//   - Revisions are int64, start at 1 for the first write and grow by one with every
//     transaction that writes. A key's ModRevision is the revision of its last write;
//     CreateRevision that of the write that created it.
//   - Reads are linearizable by default: a read observes every write acknowledged before the
//     read began, on whichever replica it is served. Stale() opts a read into the local,
//     possibly lagging, copy (cheaper; no leader round trip).
//   - Txn applies all its operations atomically when all its compares hold, otherwise none
//     of them and returns ErrConflict (ErrFenced when a leadership fence failed).
//   - Watch delivers every event after a revision in revision order, with no gaps. When the
//     revision has been compacted it fails with ErrCompacted; the caller re-lists and
//     watches from the list's revision. A watch that cannot go on without a gap (a replica
//     that was behind installed a snapshot, etcd compacted past a watcher) ends with an
//     ErrCompacted event: a watcher sees every revision in order or gets ErrCompacted.
//   - An acknowledged write survives the loss of any minority of replicas and a restart.
package store

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context; callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrConflict: a compare of the transaction did not hold; nothing was written.
	ErrConflict = errors.New("transaction conflict: a compared key changed")
	// ErrFenced: the leadership the write was fenced on has been lost; nothing was written.
	ErrFenced = errors.New("leadership lost: write fenced")
	// ErrCompacted: the requested revision is older than the retained history.
	ErrCompacted = errors.New("revision compacted")
	// ErrNoLeader: no leader could be reached in time (no quorum, or this replica is cut off).
	ErrNoLeader = errors.New("no leader reachable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrInvalid: the request itself is malformed (empty key, bad revision, ...).
	ErrInvalid = errors.New("invalid store request")
)

// KV is one key with its value and revisions.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	// Version counts writes since creation (1 after the first put).
	Version int64
}

// Store is a revisioned key-value store. Keys are strings; by convention '/'-separated paths.
type Store interface {
	// Get returns the key and the store revision it was read at. A missing key returns
	// ErrNotFound (and still the revision).
	Get(ctx context.Context, key string, opts ...ReadOption) (*KV, int64, error)
	// List returns every key under prefix in key order, and the revision they were read at.
	List(ctx context.Context, prefix string, opts ...ReadOption) ([]*KV, int64, error)
	// Txn applies ops when every compare holds and returns the revision after the write.
	Txn(ctx context.Context, txn Txn) (int64, error)
	// Watch streams events for keys under prefix with revisions strictly greater than
	// afterRevision. The channel is closed when ctx ends or the store closes; a terminal
	// error (for example ErrCompacted detected later) is delivered as an event with Err set.
	Watch(ctx context.Context, prefix string, afterRevision int64) (<-chan Event, error)
	// Compact discards watch history at and below revision.
	Compact(ctx context.Context, revision int64) error
	// Close releases the store. Pending calls fail with ErrClosed.
	Close() error
}

// EventType says what happened to a key.
type EventType int

const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Event is one change to one key. For a delete, KV holds the key and the deleting revision
// in ModRevision.
type Event struct {
	Type     EventType
	KV       *KV
	Revision int64
	// Err is set on the last event of a watch that ended with an error.
	Err error
}

// CompareTarget selects what a Compare checks.
type CompareTarget int

const (
	// CompareModRevision checks the key's ModRevision; 0 means "does not exist".
	CompareModRevision CompareTarget = iota + 1
	// CompareValue checks the key's value byte for byte (a missing key never matches).
	CompareValue
)

// Compare is one condition of a transaction.
type Compare struct {
	Key         string
	Target      CompareTarget
	ModRevision int64
	Value       []byte
	// Fence marks a leadership fence (see Leadership.Fence); its failure yields ErrFenced.
	Fence bool
}

// ModRevisionIs holds when key's last write was at rev (0: key absent).
func ModRevisionIs(key string, rev int64) Compare {
	return Compare{Key: key, Target: CompareModRevision, ModRevision: rev}
}

// Absent holds when key does not exist.
func Absent(key string) Compare { return ModRevisionIs(key, 0) }

// ValueIs holds when key exists with exactly value.
func ValueIs(key string, value []byte) Compare {
	return Compare{Key: key, Target: CompareValue, Value: value}
}

// OpType is the kind of a write.
type OpType int

const (
	OpPut OpType = iota + 1
	OpDelete
	OpDeletePrefix
)

// Op is one write of a transaction.
type Op struct {
	Type  OpType
	Key   string // key, or prefix for OpDeletePrefix
	Value []byte
}

// Put sets key to value.
func Put(key string, value []byte) Op { return Op{Type: OpPut, Key: key, Value: value} }

// Delete removes key; deleting a missing key is not an error.
func Delete(key string) Op { return Op{Type: OpDelete, Key: key} }

// DeletePrefix removes every key under prefix.
func DeletePrefix(prefix string) Op { return Op{Type: OpDeletePrefix, Key: prefix} }

// Txn is a compare-and-swap transaction.
type Txn struct {
	If   []Compare
	Then []Op
}

// ReadOptions tune a read.
type ReadOptions struct {
	// Stale allows serving the read from this replica's local copy without confirming
	// leadership; it may lag behind acknowledged writes.
	Stale bool
}

// ReadOption sets a ReadOptions field.
type ReadOption func(*ReadOptions)

// Stale opts a read into the local copy.
func Stale() ReadOption { return func(o *ReadOptions) { o.Stale = true } }

// ApplyReadOptions folds opts into a ReadOptions.
func ApplyReadOptions(opts []ReadOption) ReadOptions {
	var o ReadOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Elector provides leadership among the replicas sharing a store.
type Elector interface {
	// Campaign blocks until this replica leads (or ctx ends) and returns the leadership.
	Campaign(ctx context.Context) (Leadership, error)
	// Leader returns the current leader, or ErrNoLeader.
	Leader(ctx context.Context) (LeaderInfo, error)
}

// LeaderInfo identifies a leader.
type LeaderInfo struct {
	ID      string
	Address string
}

// Leadership is held until lost or resigned.
type Leadership interface {
	// Context ends when leadership is lost or resigned. Leader-only work runs under it.
	Context() context.Context
	// Fence is a compare to add to every write made as leader: once leadership passed to
	// another campaign, such writes fail with ErrFenced.
	Fence() Compare
	// Resign gives up leadership and ends Context.
	Resign(ctx context.Context) error
}

// TxnLimits bound one transaction: how many operations it carries and how many bytes of
// keys and values it puts. A writer that may write much (the workflow engine's passes)
// splits its work to stay within its store's (LimitsOf).
type TxnLimits struct {
	Ops   int
	Bytes int
}

// DefaultTxnLimits are etcd's defaults (--max-txn-ops 128, --max-request-bytes 1.5 MiB),
// what an existing etcd cluster accepts unless its operator raised them.
var DefaultTxnLimits = TxnLimits{Ops: 128, Bytes: 3 << 19}

// Limited is a store whose transactions are bounded otherwise than DefaultTxnLimits.
type Limited interface {
	TxnLimits() TxnLimits
}

// LimitsOf returns the transaction limits of st.
func LimitsOf(st Store) TxnLimits {
	if l, ok := st.(Limited); ok {
		return l.TxnLimits()
	}
	return DefaultTxnLimits
}

// Check says whether t fits within l; the error names what is over and by how much.
func (l TxnLimits) Check(t Txn) error {
	if l.Ops > 0 && len(t.Then) > l.Ops {
		return invalidf("a transaction carries %d operations; at most %d fit (split the write)", len(t.Then), l.Ops)
	}
	if l.Bytes > 0 {
		n := 0
		for _, op := range t.Then {
			n += len(op.Key) + len(op.Value)
		}
		if n > l.Bytes {
			return invalidf("a transaction puts %d bytes; at most %d fit (split the write)", n, l.Bytes)
		}
	}
	return nil
}

// Validate checks a transaction before it is sent anywhere.
func (t Txn) Validate() error {
	for i, c := range t.If {
		if c.Key == "" {
			return invalidf("compare %d: empty key", i)
		}
		if c.Target != CompareModRevision && c.Target != CompareValue {
			return invalidf("compare %d on %q: unknown target %d", i, c.Key, c.Target)
		}
		if c.Target == CompareModRevision && c.ModRevision < 0 {
			return invalidf("compare %d on %q: negative revision", i, c.Key)
		}
	}
	for i, op := range t.Then {
		switch op.Type {
		case OpPut, OpDelete:
			if op.Key == "" {
				return invalidf("op %d: empty key", i)
			}
		case OpDeletePrefix:
			if op.Key == "" {
				return invalidf("op %d: empty prefix would delete everything", i)
			}
		default:
			return invalidf("op %d: unknown type %d", i, op.Type)
		}
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

package raftstore

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store"
)

type bufSink struct {
	bytes.Buffer
}

func (s *bufSink) ID() string    { return "fuzz" }
func (s *bufSink) Cancel() error { return nil }
func (s *bufSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*bufSink)(nil)

// FuzzRestore feeds arbitrary bytes to snapshot restore: a damaged snapshot file must give
// an error, never a panic or a half-restored state.
func FuzzRestore(f *testing.F) {
	src := newFSM(100, nil, nil)
	src.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: mustMarshal(txnToCommand(store.Txn{Then: []store.Op{store.Put("/a", []byte("1")), store.Put("/b", []byte("2"))}}))}})
	snap, _ := src.Snapshot()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		f.Fatal(err)
	}
	f.Add(sink.Bytes())
	f.Add([]byte{})
	var hdrOnly bytes.Buffer
	protodelim.MarshalTo(&hdrOnly, &storagev1.SnapshotHeader{Format: 1, KeyCount: 5})
	f.Add(hdrOnly.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := newFSM(100, nil, nil)
		dst.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: mustMarshal(txnToCommand(store.Txn{Then: []store.Op{store.Put("/keep", []byte("x"))}}))}})
		err := dst.Restore(io.NopCloser(bytes.NewReader(data)))
		if err != nil {
			// A failed restore leaves the previous state in place.
			if kv, _ := dst.get("/keep"); kv == nil {
				t.Fatal("failed restore dropped existing state")
			}
		}
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := newFSM(100, nil, nil)
	for i, k := range []string{"/a", "/b", "/a", "/c"} {
		src.ApplyBatch([]*raft.Log{{Index: uint64(i + 1), Type: raft.LogCommand, Data: mustMarshal(txnToCommand(store.Txn{Then: []store.Op{store.Put(k, []byte(k))}}))}})
	}
	snap, _ := src.Snapshot()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	dst := newFSM(100, nil, nil)
	if err := dst.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	a, rev := dst.get("/a")
	if rev != 4 || a == nil || a.Version != 2 || a.CreateRevision != 1 || a.ModRevision != 3 {
		t.Fatalf("restored /a = %+v at rev %d", a, rev)
	}
	if kvs, _ := dst.list("/"); len(kvs) != 3 {
		t.Fatalf("restored %d keys, want 3", len(kvs))
	}
}

func mustMarshal(cmd *storagev1.Command) []byte {
	b, err := proto.Marshal(cmd)
	if err != nil {
		panic(err)
	}
	return b
}

// A command retried with the same request ID (a forwarded write whose reply was lost) is
// answered from the record, not applied twice, also after a snapshot restore.
func TestRetriedRequestAppliesOnce(t *testing.T) {
	f := newFSM(100, nil, nil)
	cmd := txnToCommand(store.Txn{Then: []store.Op{store.Put("/uses", []byte("1"))}})
	cmd.RequestId = "req-1"
	data := mustMarshal(cmd)
	first := f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: data}})[0].(*storagev1.TxnResult)
	again := f.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogCommand, Data: data}})[0].(*storagev1.TxnResult)
	if first.GetRevision() != 1 || again.GetRevision() != 1 {
		t.Fatalf("revisions %d then %d: the retry was applied again", first.GetRevision(), again.GetRevision())
	}
	kv, rev := f.get("/uses")
	if rev != 1 || kv.Version != 1 {
		t.Fatalf("after retry: rev %d version %d", rev, kv.Version)
	}
	snap, _ := f.Snapshot()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(100, nil, nil)
	if err := g.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	res := g.ApplyBatch([]*raft.Log{{Index: 3, Type: raft.LogCommand, Data: data}})[0].(*storagev1.TxnResult)
	if res.GetRevision() != 1 {
		t.Fatalf("after restore the retry applied again: rev %d", res.GetRevision())
	}
	// A different request is applied.
	cmd.RequestId = "req-2"
	if res := g.ApplyBatch([]*raft.Log{{Index: 4, Type: raft.LogCommand, Data: mustMarshal(cmd)}})[0].(*storagev1.TxnResult); res.GetRevision() != 2 {
		t.Fatalf("new request: rev %d", res.GetRevision())
	}
}

// Exactly the latest maxRequests request IDs are remembered, as every replica must (a
// replica that remembered more would answer a late retry the others apply), also after a
// snapshot restore; forgetting the oldest does not copy the others.
func TestRememberedRequestsBounded(t *testing.T) {
	f := newFSM(100, nil, nil)
	cmd := txnToCommand(store.Txn{Then: []store.Op{store.Put("/k", []byte("v"))}})
	const writes = 3*maxRequests + 17
	for i := range writes {
		cmd.RequestId = fmt.Sprintf("req-%d", i)
		f.ApplyBatch([]*raft.Log{{Index: uint64(i + 1), Type: raft.LogCommand, Data: mustMarshal(cmd)}})
		if n := len(f.requests); n != min(i+1, maxRequests) || len(f.requestOrder) != n {
			t.Fatalf("after %d writes %d IDs remembered, %d in order", i+1, n, len(f.requestOrder))
		}
	}
	snap, _ := f.Snapshot()
	var sink bufSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(100, nil, nil)
	if err := g.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*fsm{"applied": f, "restored": g} {
		for _, tc := range []struct {
			i    int
			seen bool
		}{{writes - 1, true}, {writes - maxRequests, true}, {writes - maxRequests - 1, false}} {
			cmd.RequestId = fmt.Sprintf("req-%d", tc.i)
			res := m.ApplyBatch([]*raft.Log{{Index: writes + 1, Type: raft.LogCommand, Data: mustMarshal(cmd)}})[0].(*storagev1.TxnResult)
			if seen := res.GetRevision() == int64(tc.i+1); seen != tc.seen {
				t.Errorf("%s: request %d retried: revision %d, remembered %v, want %v", name, tc.i, res.GetRevision(), seen, tc.seen)
			}
		}
	}
}

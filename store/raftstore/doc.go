// Package raftstore is the embedded default store.Store and store.Elector: a revisioned
// key-value state machine replicated with hashicorp/raft across 1, 3 or 5 controller
// replicas.
//
// What is on disk, in the replica's data dir:
//   - raft.db: the raft log and stable store, raft-boltdb/v2 (bbolt). We chose it over
//     raft-wal because it is the store hashicorp/raft is tested with most, it resolves
//     cleanly against raft v1.7.3 with the rest of our dependency set, and its one-fsync-per-
//     batch write path is fast enough once concurrent writes are batched (see below). Its file
//     lock also stops a second process from opening the same data dir.
//   - snapshots/: raft file snapshots. A snapshot is a stream of length-delimited protobuf
//     records (deckhand.storage.v1.SnapshotHeader, then SnapshotRecord per key), and every
//     log entry is a deckhand.storage.v1.Command, so buf's breaking checks guard the formats.
//   - member.json: the cluster ID, this replica's ID and the backend ("raft"), written when
//     the replica bootstraps or joins, so a data dir is never silently reused for another
//     cluster.
//
// The data dir is made 0700 and everything in it 0600 at every start, and each snapshot
// once written (a snapshot holds the cluster CA key). Before anything is opened for writing,
// Open refuses a damaged data dir in one line and leaves it as it was: raft.db missing or
// empty beside member.json or a snapshot, raft.db unreadable (bbolt's panics on corrupt pages
// are caught in a read-only pass over every page), member.json missing beside raft state.
//
// Watches: a follower that installs the leader's snapshot skipped the revisions in between,
// so every open watch on it ends with store.ErrCompacted (its callers re-list).
//
// Networking: raft and the controller's gRPC API share one TCP port (internal/netmux).
// Followers forward writes and linearizable reads to the leader over gRPC
// (deckhand.storage.v1.ReplicaService); joins and removals are forwarded the same way.
//
// Writes: raft.Config.BatchApplyCh is on and the FSM implements raft.BatchingFSM, so
// concurrent Txn calls share one log append, one fsync and one FSM lock. Throughput grows
// with the number of concurrent writers (make bench).
//
// Reads: linearizable by default. The leader records its commit index, confirms it still
// leads (VerifyLeader, a heartbeat round), and waits until its FSM has applied that index.
// A new leader serves nothing until a Barrier in its term has applied everything before it.
// Stale reads are served from the local FSM.
//
// Leadership: the raft leader is the store leader. Once established (Barrier), the leader
// writes a leader record; Campaign writes a fresh one and its revision is the fence, so
// writes fenced on an older record fail with store.ErrFenced on every replica.
//
// The FSM is deterministic: no clock, no randomness; its state depends only on the log.
package raftstore

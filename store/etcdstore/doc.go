// Package etcdstore is the store.Store and store.Elector of a Deckhand controller that runs
// on an existing etcd cluster (etcd 3.4 or later) instead of the embedded raftstore.
//
// Keys: every store key lives below one etcd prefix (Config.Prefix, default /deckhand):
// store key /nodes/a is etcd key /deckhand/nodes/a, so `etcdctl get --prefix /deckhand/`
// shows the cluster. Store keys must start with '/'. Reserved keys sit under
// PREFIX/_deckhand/: the cluster ID (cluster) and the election (election/<lease>).
//
// Revisions are etcd's: one counter for the whole etcd cluster, so they also move with
// writes of other etcd users (they stay monotonic, which is all the contract promises).
// Reads are linearizable by default; store.Stale() maps to etcd's serializable reads.
//
// Transactions map 1:1 onto etcd's. etcd answers only whether all compares held, so the
// failure branch reads the compared keys in the same transaction; from those, a failed fence
// yields store.ErrFenced and any other failure store.ErrConflict. etcd limits a transaction
// to --max-txn-ops operations (128 by default) and refuses one that writes a key twice;
// both fail with store.ErrInvalid and say so.
//
// Watches start after a revision; a compacted start fails at once with store.ErrCompacted
// (checked with a read at that revision), later compaction ends the watch with an
// ErrCompacted event. Watches require an etcd leader: a watch on a member cut off from its
// quorum ends with an ErrNoLeader event instead of going silent.
//
// Leadership: etcd's election recipe (client/v3/concurrency). Campaign opens a session (a
// lease of SessionTTL kept alive by the client) and puts a key under
// PREFIX/_deckhand/election; the oldest key leads. The fence compares that key's mod
// revision, so it fails once the lease is revoked or expires. Leadership.Context ends when
// the session dies (including when keepalives have failed for a TTL) or the key is deleted.
//
// Open checks each endpoint with a GET /version before building the client, so a wrong
// address or TLS setting fails at once in one line, then records (or checks) the cluster ID
// at PREFIX/_deckhand/cluster with a write, which needs a quorum.
package etcdstore

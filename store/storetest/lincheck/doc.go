// Package lincheck checks a store backend under faults: clients run a random mix of Get,
// List (prefix) and compare-and-swap transactions on every replica, one whole-keyspace
// watcher per replica records every event, and leaders elected through the backend's Elector
// write under their fence, while a schedule injects the faults the backend's harness offers
// (leader kill and restart, partitions, pauses, snapshot installs on a lagging follower).
//
// Afterwards three checks run on the recorded history:
//   - linearizability (Porcupine) against a model of the revisioned key-value store; writes
//     whose outcome the client did not learn (timeouts, a replica killed under them) are
//     resolved from the watch streams, as etcd's robustness tests do: every write carries a
//     unique value, so the event holding it names its revision;
//   - an exact replay of the write log against every watcher: no gap that was not announced
//     with ErrCompacted, no duplicate, revisions in order, the same events at a revision on
//     every replica, and the events of a write exactly its operations;
//   - leadership fencing: the fenced writes of two terms never interleave.
//
// It is test tooling: backends call Run from their _test.go files; no binary links it.
package lincheck

// Package testetcd runs real etcd server processes for tests: Debian's etcd (package
// etcd-server), one member or a static cluster of several, on loopback ports chosen free,
// with data dirs under t.TempDir(). Members are stopped by PID in t.Cleanup, and a test can
// kill and restart one to inject faults.
//
// Without an etcd binary the tests that need one are skipped, unless DECKHAND_REQUIRE_ETCD
// is set (CI sets it), in which case they fail.
package testetcd

// Package testetcd runs real etcd server processes for tests: Debian's etcd (package
// etcd-server, Binary) or, where a test needs a given version, the one the Kubernetes build
// kit built from the Go module proxy (KitBinary: etcd 3.5.24 for the store checker), one
// member or a static cluster of several, on loopback ports chosen free, with data dirs under
// t.TempDir(). Members are stopped by PID in t.Cleanup, and a test can inject faults: kill
// (SIGKILL) and restart a member, pause it (SIGSTOP/SIGCONT), or, with Options.PeerProxy,
// partition it from its peers (proxy.go).
//
// Without an etcd binary the tests that need one are skipped, unless DECKHAND_REQUIRE_ETCD
// is set (CI sets it), in which case they fail.
package testetcd

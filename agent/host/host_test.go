package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestDryRunChangesNothingAndReportsTheSame(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "crictl.yaml"), []byte("timeout: 2\n"), 0o644)
	apply := func(h *Host) {
		if _, err := h.WriteFile("/etc/crictl.yaml", []byte("timeout: 10\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteFile("/etc/containerd/config.toml", []byte("version = 2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.Run(context.Background(), "restart containerd", "true"); err != nil {
			t.Fatal(err)
		}
	}
	dry := &Host{Root: root, DryRun: true}
	apply(dry)
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "crictl.yaml")); string(b) != "timeout: 2\n" {
		t.Fatalf("dry-run wrote: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "containerd")); !os.IsNotExist(err) {
		t.Fatal("dry-run created a directory")
	}
	wet := &Host{Root: root}
	apply(wet)
	if len(dry.Changes()) != 3 || len(wet.Changes()) != 3 {
		t.Fatalf("dry-run reported %d changes, the real run made %d", len(dry.Changes()), len(wet.Changes()))
	}
	for i := range dry.Changes() {
		if dry.Changes()[i].String() != wet.Changes()[i].String() {
			t.Fatalf("dry-run %v != real %v", dry.Changes()[i], wet.Changes()[i])
		}
	}
	if d := wet.Changes()[0].GetDetail(); !strings.Contains(d, "+timeout: 10") || !strings.Contains(d, "-timeout: 2") {
		t.Fatalf("diff detail: %q", d)
	}
	// A second run with the same content changes no file.
	again := &Host{Root: root}
	if changed, _ := again.WriteFile("/etc/crictl.yaml", []byte("timeout: 10\n"), 0o644); changed || len(again.Changes()) != 0 {
		t.Fatal("identical write reported a change")
	}
}

func TestPathsStayUnderRootAndCommandsAreArgv(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	if p := h.Path("../../etc/passwd"); !strings.HasPrefix(p, root) {
		t.Fatalf("path escaped the root: %s", p)
	}
	// An argument with shell syntax is passed as one argument, never interpreted.
	out, err := h.Query(context.Background(), "echo", "a; rm -rf /", "$(id)")
	if err != nil || string(out) != "a; rm -rf / $(id)\n" {
		t.Fatalf("echo: %q %v", out, err)
	}
	if _, err := h.Query(context.Background(), "no-such-binary-deckhand"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing binary: %v", err)
	}
}

const (
	oldJoin = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.250.0.10:6443\n    token: oldtok.0123456789oldtok\n    caCertHashes:\n    - sha256:4c1d0f7e5b2a9c8d3e6f1a0b7c2d9e8f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d\n  tlsBootstrapToken: oldtok.0123456789oldtok\ncontrolPlane:\n  certificateKey: 1111111111111111111111111111111111111111111111111111111111111111\n"
	newJoin = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.250.0.10:6443\n    token: newtok.0123456789newtok\n    caCertHashes:\n    - sha256:4c1d0f7e5b2a9c8d3e6f1a0b7c2d9e8f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d\n  tlsBootstrapToken: newtok.0123456789newtok\ncontrolPlane:\n  certificateKey: 2222222222222222222222222222222222222222222222222222222222222222\n"
)

func leakedIn(changes []*taskv1.Change, secrets ...string) string {
	for _, c := range changes {
		for _, s := range secrets {
			if strings.Contains(c.GetTarget()+c.GetDetail(), s) {
				return c.GetTarget() + ": " + c.GetDetail()
			}
		}
	}
	return ""
}

// A join config written over the one a killed agent left records no token or
// certificate key: written as a secret file, or (the safety net) by any caller.
func TestSecretFileChangesShowNoSecret(t *testing.T) {
	secrets := []string{"0123456789oldtok", "0123456789newtok", strings.Repeat("1", 64), strings.Repeat("2", 64)}
	for _, secretOpt := range []bool{true, false} {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc/kubernetes/deckhand"), 0o700)
		os.WriteFile(filepath.Join(root, "etc/kubernetes/deckhand/kubeadm-join.yaml"), []byte(oldJoin), 0o600)
		h := &Host{Root: root}
		var opts []WriteOption
		if secretOpt {
			opts = append(opts, Secret)
		}
		if _, err := h.WriteFile("/etc/kubernetes/deckhand/kubeadm-join.yaml", []byte(newJoin), 0o600, opts...); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteFile("/etc/kubernetes/deckhand/fresh.yaml", []byte(newJoin), 0o600, opts...); err != nil {
			t.Fatal(err)
		}
		if l := leakedIn(h.Changes(), secrets...); l != "" {
			t.Fatalf("secret option %v: a secret shows in the change record: %s", secretOpt, l)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/deckhand/kubeadm-join.yaml")); string(b) != newJoin {
			t.Fatal("the file was not written")
		}
		if d := h.Changes()[0].GetDetail(); secretOpt && !strings.Contains(d, "content not shown") || !secretOpt && !strings.Contains(d, "apiServerEndpoint") && !strings.Contains(d, "token: <redacted>") {
			t.Fatalf("secret option %v: detail %q", secretOpt, d)
		}
	}

	// A private key is never diffed, and its replacement says so.
	root := t.TempDir()
	h := &Host{Root: root}
	key1 := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAAAA\n-----END EC PRIVATE KEY-----\n"
	key2 := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBBBB\n-----END EC PRIVATE KEY-----\n"
	h.WriteFile("/etc/kubernetes/pki/sa.key", []byte(key1), 0o600)
	h.WriteFile("/etc/kubernetes/pki/sa.key", []byte(key2), 0o600)
	if l := leakedIn(h.Changes(), "AAAA", "BBBB"); l != "" {
		t.Fatalf("a private key shows in the change record: %s", l)
	}
	// A kubeconfig's client key is masked in its diff.
	h.WriteFile("/root/.kube/config", []byte("users:\n- name: a\n  user:\n    client-key-data: T0xES0VZ\n"), 0o600)
	h.WriteFile("/root/.kube/config", []byte("users:\n- name: a\n  user:\n    client-key-data: TkVXS0VZ\n"), 0o600)
	if l := leakedIn(h.Changes(), "T0xES0VZ", "TkVXS0VZ"); l != "" {
		t.Fatalf("a client key shows in the change record: %s", l)
	}
}

// RemoveAll removes a directory tree once (a dry-run records it and keeps it), records
// nothing when it is gone, and never removes the host's root.
func TestRemoveAll(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/cni/networks/cbr0"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/cni/networks/cbr0/10.244.1.5"), []byte("x"), 0o644)
	dry := &Host{Root: root, DryRun: true}
	if changed, err := dry.RemoveAll("/var/lib/cni"); !changed || err != nil || len(dry.Changes()) != 1 || !dry.Exists("/var/lib/cni/networks/cbr0/10.244.1.5") {
		t.Fatalf("dry-run: changed %v, %v, %v", changed, err, dry.Changes())
	}
	wet := &Host{Root: root}
	if changed, err := wet.RemoveAll("/var/lib/cni"); !changed || err != nil || wet.Exists("/var/lib/cni") || !wet.Exists("/var/lib") {
		t.Fatalf("remove: changed %v, %v", changed, err)
	}
	again := &Host{Root: root}
	if changed, err := again.RemoveAll("/var/lib/cni"); changed || err != nil || len(again.Changes()) != 0 {
		t.Fatalf("a second remove: changed %v, %v, %v", changed, err, again.Changes())
	}
	for _, p := range []string{"/", "", "/.."} {
		if _, err := wet.RemoveAll(p); err == nil || !wet.Exists("/var/lib") {
			t.Fatalf("RemoveAll(%q) did not refuse the root: %v", p, err)
		}
	}
}

// A command run to the end finishes although its task is cancelled while it runs (a
// package manager or kubeadm upgrade is never killed half way), says so once with the
// reason; a task cancelled before does not start it; the bound still ends a hung one.
func TestToTheEndOutlivesACancel(t *testing.T) {
	h := &Host{Root: t.TempDir()}
	started, done := filepath.Join(t.TempDir(), "started"), filepath.Join(t.TempDir(), "done")
	ctx, cancel := context.WithCancel(context.Background())
	reasons := make(chan error, 2)
	run, stop := ToTheEnd(ctx, time.Minute, func(reason error) { reasons <- reason })
	errc := make(chan error, 1)
	go func() {
		// The test's own command: a marker once it runs, another when it ends.
		errc <- h.Run(run, "a command that takes a moment", "sh", "-c", `touch "$0"; sleep 0.3; touch "$1"`, started, done)
	}()
	testwait.For(t, 10*time.Second, func() error {
		_, err := os.Stat(started)
		return err
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("a command run to the end, its task cancelled while it ran: %v, want it finished", err)
	}
	stop()
	if _, err := os.Stat(done); err != nil {
		t.Fatalf("the command was stopped half way: %v", err)
	}
	select {
	case r := <-reasons:
		if !errors.Is(r, context.Canceled) || Stopped(r) != "cancel asked" {
			t.Fatalf("the log's reason: %v (%q)", r, Stopped(r))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancel was not logged")
	}
	if len(reasons) != 0 {
		t.Fatal("the cancel was logged twice")
	}

	// Cancelled before: nothing starts.
	again := filepath.Join(t.TempDir(), "again")
	run, stop = ToTheEnd(ctx, time.Minute, nil)
	if err := h.Run(run, "too late", "touch", again); err == nil {
		t.Fatal("a command started after its task was cancelled")
	}
	stop()
	if _, err := os.Stat(again); err == nil {
		t.Fatal("a command ran after its task was cancelled")
	}

	run, stop = ToTheEnd(context.Background(), 50*time.Millisecond, nil)
	defer stop()
	if err := h.Run(run, "hang", "sleep", "30"); err == nil {
		t.Fatal("a command past the bound of ToTheEnd was not stopped")
	}
	if Stopped(context.DeadlineExceeded) != "the step's time is up" {
		t.Fatal(Stopped(context.DeadlineExceeded))
	}
}

// A program written over another is described by its sizes, not diffed line by line (a
// diff of two 80 MB kubelets took seconds and overflowed the task's result), and never by
// a digest; a mode change alone says so; a large text file holding a key is still secret.
func TestBinaryFileChangesAreSizedNotDiffed(t *testing.T) {
	h := &Host{Root: t.TempDir()}
	small := []byte("\x7fELF\x00\x01 a small program\n")
	if _, err := h.WriteFile("/usr/local/bin/tool", small, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteFile("/usr/local/bin/tool", small, 0o700); err != nil {
		t.Fatal(err)
	}
	big := append([]byte("\x7fELF\x00\x02"), bytes.Repeat([]byte("line\n"), 1000)...)
	if _, err := h.WriteFile("/usr/local/bin/tool", big, 0o755); err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("a text line\n"), MaxDiffBytes/8)
	if _, err := h.WriteFile("/var/lib/big.txt", text, 0o644); err != nil {
		t.Fatal(err)
	}
	keyed := append(bytes.Repeat([]byte("x\n"), MaxDiffBytes), []byte("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")...)
	if _, err := h.WriteFile("/var/lib/keyed.txt", keyed, 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range h.Changes() {
		got = append(got, c.GetDetail())
	}
	want := []string{
		fmt.Sprintf("create: %d bytes", len(small)),
		"mode changed",
		fmt.Sprintf("update: %d bytes, %d before", len(big), len(small)),
		fmt.Sprintf("create: %d bytes", len(text)),
		"create (content not shown: the file holds secrets)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n%q\nwant\n%q", got, want)
	}
}

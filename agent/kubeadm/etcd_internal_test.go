package kubeadm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// kubeadm's etcd manifest of a control plane that joined (trimmed): a restore's re-join
// rewrites its member list and keeps everything else.
const joinedEtcd = `apiVersion: v1
kind: Pod
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.250.0.24:2379
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.250.0.24:2380
    - --initial-cluster=node-1=https://10.250.0.21:2380,node-4=https://10.250.0.24:2380
    - --initial-cluster-state=existing
    - --name=node-4
    image: 10.250.0.1:5000/etcd:3.6.5-0
`

func TestEtcdManifestFlags(t *testing.T) {
	m := []byte(joinedEtcd)
	for flag, want := range map[string]string{"data-dir": "/var/lib/etcd", "name": "node-4", "initial-advertise-peer-urls": "https://10.250.0.24:2380", "missing": "def"} {
		if got := etcdFlag(m, flag, "def"); got != want {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	if im := imageRE.FindSubmatch(m); im == nil || string(im[1]) != "10.250.0.1:5000/etcd:3.6.5-0" {
		t.Errorf("image %q", im)
	}
	out, err := setEtcdFlag(m, "initial-cluster", "node-2=https://10.250.0.22:2380,node-4=https://10.250.0.24:2380")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(joinedEtcd, "node-1=https://10.250.0.21:2380,node-4", "node-2=https://10.250.0.22:2380,node-4", 1)
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}

	// The first control plane's manifest has no --initial-cluster-state: it is added after
	// --name, indented as the others.
	first := strings.Replace(joinedEtcd, "    - --initial-cluster-state=existing\n", "", 1)
	out, err = setEtcdFlag([]byte(first), "initial-cluster-state", "existing")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "    - --name=node-4\n    - --initial-cluster-state=existing\n    image:") {
		t.Fatalf("got\n%s", out)
	}
	if _, err := setEtcdFlag([]byte("spec: {}\n"), "initial-cluster-state", "existing"); err == nil {
		t.Error("a manifest without --name: no error")
	}
}

// A restore's stash is named once (restore-ID, whether the ID carries the prefix or not),
// and a stash still holding manifests marks the restore in progress.
func TestRestoreInProgress(t *testing.T) {
	root := t.TempDir()
	h := &host.Host{Root: root}
	if got := restoreDirs("restore-20261201t030000").stash; got != "/etc/kubernetes/deckhand/restore-20261201t030000" {
		t.Errorf("stash %s", got)
	}
	if restoreDirs("20261201t030000") != restoreDirs("restore-20261201t030000") {
		t.Error("the prefix changes the stash")
	}
	if id := RestoreInProgress(h); id != "" {
		t.Fatalf("nothing stashed: %q", id)
	}
	dir := filepath.Join(root, "etc/kubernetes/deckhand/restore-20261201t030000")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "restored"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if id := RestoreInProgress(h); id != "" {
		t.Fatalf("a finished restore's marker only: %q", id)
	}
	if err := os.WriteFile(filepath.Join(dir, "etcd.yaml"), []byte(joinedEtcd), 0o600); err != nil {
		t.Fatal(err)
	}
	if id := RestoreInProgress(h); id != "20261201t030000" {
		t.Fatalf("a stashed manifest: %q", id)
	}
	var te *tasks.Error
	if err := restoreInProgressError(RestoreInProgress(h)); !errors.As(err, &te) || te.Reason != "RESTORE_IN_PROGRESS" || !strings.Contains(te.Msg, "restore-20261201t030000") || !strings.Contains(te.Hint, "deckctl workflow retry") {
		t.Errorf("error %v", err)
	}
}

// Scheduled snapshots beyond keep go, the oldest first; snapshots taken by hand stay.
func TestPruneScheduled(t *testing.T) {
	root := t.TempDir()
	h := &host.Host{Root: root}
	dir := filepath.Join(root, "var/lib/deckhand/etcd-snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"scheduled-a", "manual-b", "scheduled-c", "scheduled-d", "saved-e"} {
		meta := fmt.Sprintf(`{"name":%q,"sha256":"x","size":1,"revision":1,"taken":"2026-12-01T0%d:00:00Z"}`, name, i)
		for f, b := range map[string]string{name + ".json": meta, name + ".db": "x"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(b), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var said []string
	logf := func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }
	if err := pruneScheduled(h, 0, logf); err != nil || len(said) != 0 {
		t.Fatalf("keep 0: %v %v", said, err)
	}
	if err := pruneScheduled(h, 2, logf); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range mustReadDir(t, dir) {
		left = append(left, e)
	}
	if got := strings.Join(left, " "); got != "manual-b.db manual-b.json saved-e.db saved-e.json scheduled-c.db scheduled-c.json scheduled-d.db scheduled-d.json" {
		t.Fatalf("left %s (said %v)", got, said)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// The old member data stays inside the data directory (a rename cannot leave its file
// system), once: a second attempt clears what a failed start left instead.
func TestMoveAsideStaysInTheDataDirectory(t *testing.T) {
	root := t.TempDir()
	h := &host.Host{Root: root}
	data := filepath.Join(root, "var/lib/etcd")
	if err := os.MkdirAll(filepath.Join(data, "member/snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := moveAsideLog(h, "/var/lib/etcd", "restore-x", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "member.before-restore-x/snap")); err != nil {
		t.Fatalf("not kept: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(data, "member/wal"), 0o700); err != nil { // a failed start's
		t.Fatal(err)
	}
	if err := moveAsideLog(h, "/var/lib/etcd", "restore-x", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "member")); !os.IsNotExist(err) {
		t.Fatalf("a failed start's member directory left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "member.before-restore-x/snap")); err != nil {
		t.Fatalf("the kept data went: %v", err)
	}
}

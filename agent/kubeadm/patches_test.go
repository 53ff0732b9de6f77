package kubeadm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The patches directory holds exactly the cluster's patches, each 0600 and named as kubeadm
// reads them; a stale one is removed, and a dry-run only reports.
func TestWritePatches(t *testing.T) {
	root := t.TempDir()
	h := &host.Host{Root: root}
	dir := filepath.Join(root, kubeadmconfig.PatchesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kube-scheduler000+strategic.yaml"), []byte("metadata: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := kubeadmconfig.ParseCluster(&taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", Patches: []*taskv1.KubeadmPatch{
		{Target: "kube-apiserver", Patch: "metadata: {annotations: {a: b}}"},
		{Target: "kubeletconfiguration", Type: "merge", Patch: "maxPods: 150\n"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	dry := &host.Host{Root: root, DryRun: true}
	if err := writePatches(dry, c); err != nil {
		t.Fatal(err)
	}
	if len(dry.Changes()) != 3 {
		t.Errorf("dry-run changes = %v, want two files written and one removed", dry.Changes())
	}
	if err := writePatches(h, c); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if st, _ := e.Info(); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), st.Mode().Perm())
		}
	}
	if want := []string{"kube-apiserver000+strategic.yaml", "kubeletconfiguration001+merge.yaml"}; !slices.Equal(names, want) {
		t.Fatalf("patches directory = %v, want %v", names, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, names[0])); string(b) != "metadata: {annotations: {a: b}}\n" {
		t.Errorf("%s = %q", names[0], b)
	}
	// Again: nothing changes.
	again := &host.Host{Root: root}
	if err := writePatches(again, c); err != nil || len(again.Changes()) != 0 {
		t.Fatalf("second write: %v, changes %v", err, again.Changes())
	}
}

package kubeadm

import (
	"os"
	"path"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
)

// writePatches makes kubeadmconfig.PatchesDir hold exactly the cluster's kubeadm patches,
// as the configuration's patches.directory names them: each file 0600 (a patch can carry
// a flag's value only root should read), and the files of patches the cluster no longer
// has removed, so kubeadm never applies a stale one. Nothing is written for a cluster
// without patches.
func writePatches(h *host.Host, c kubeadmconfig.Cluster) error {
	want := map[string]bool{}
	for _, f := range kubeadmconfig.PatchFiles(c) {
		want[f.Name] = true
		if _, err := h.WriteFile(path.Join(kubeadmconfig.PatchesDir, f.Name), f.Data, 0o600); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(h.Path(kubeadmconfig.PatchesDir))
	if err != nil {
		return nil // no directory: nothing stale
	}
	for _, e := range entries {
		if !want[e.Name()] {
			if _, err := h.RemoveFile(path.Join(kubeadmconfig.PatchesDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

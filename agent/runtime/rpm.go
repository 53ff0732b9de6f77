package runtime

import (
	"context"
	"slices"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/containerdrepo"
	"github.com/deckhandhq/deckhand/internal/pgpkey"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// pinKey puts the repository's key in containerdrepo.KeyFile when it is the pinned one (a file
// holding that key and no other), fetched when the file there is not it: dnf trusts the
// keys the repository file names, so no other key gets there.
func pinKey(ctx context.Context, h *host.Host, e *tasks.Emitter, keyURL, want string) error {
	if b, err := h.ReadFile(containerdrepo.KeyFile); err == nil {
		if fps, err := pgpkey.Fingerprints(b); err == nil && slices.Equal(fps, []string{want}) {
			return nil
		}
	}
	key, err := host.DownloadMax(ctx, keyURL, pgpkey.MaxKeySize)
	if err != nil {
		return tasks.Errorf("FETCH_FAILED", "check the repository's key URL and the node's network", "the containerd repository's key: %v", err)
	}
	fps, err := pgpkey.Fingerprints(key)
	if err != nil {
		return tasks.Errorf("GPG_KEY_MISMATCH", "check the repository's key URL", "%s: %v; nothing was installed", keyURL, err)
	}
	if !slices.Equal(fps, []string{want}) {
		return tasks.Errorf("GPG_KEY_MISMATCH", "check the fingerprint the repository publishes against the one pinned (spec.runtime.repository.gpgKeyFingerprint); a key that changed unannounced is a reason to stop",
			"the key at %s has fingerprint %s, not the pinned %s: nothing was installed", keyURL, strings.Join(fps, ", "), want)
	}
	if _, err := h.WriteFile(containerdrepo.KeyFile, key, 0o644); err != nil {
		return err
	}
	e.Did("pinned the containerd repository's key %s in "+containerdrepo.KeyFile, "would pin the containerd repository's key %s in "+containerdrepo.KeyFile, want)
	return nil
}

// installRPM installs containerd.io (containerd and runc) from its repository and the
// distribution's CNI plugins with dnf.
func installRPM(ctx context.Context, h *host.Host, e *tasks.Emitter, spec *taskv1.RuntimeSpec) error {
	r := spec.GetRepository()
	repo, err := containerdrepo.Resolve("repository.", r.GetBaseUrl(), r.GetGpgKeyUrl(), r.GetGpgKeyFingerprint(), h.OS())
	if err == nil {
		err = containerdrepo.CheckVersion("containerd_version", spec.GetContainerdVersion())
	}
	if err != nil {
		return tasks.Errorf("INVALID_ARGUMENT", "give the containerd repository's base URL, key URL and key fingerprint, or none for Docker's", "%v", err)
	}
	pkg := "containerd.io"
	if v := spec.GetContainerdVersion(); v != "" {
		pkg += "-" + v
	}
	if err := pinKey(ctx, h, e, repo.KeyURL, repo.Fingerprint); err != nil {
		return err
	}
	if _, err := h.WriteFile(containerdrepo.File, []byte(containerdrepo.RepoFile(repo.Base)), 0o644); err != nil {
		return err
	}
	return h.RunToTheEnd(ctx, e.Logf, "install "+pkg+" and the CNI plugins", "dnf", "install", "-y", "--disableexcludes="+containerdrepo.ID, pkg, "containernetworking-plugins")
}

// Package images is the agent's images task: the control-plane image set (or explicit
// images) pulled through the CRI API with an ordered list of mirrors, a per-image timeout
// and fallback to the next mirror; list and remove; export to and import from an image
// tarball for air-gapped hosts (with ctr, in containerd's k8s.io namespace, which is the
// one the CRI sees).
//
// Mirror fallback: containerd itself tries the hosts of hosts.toml in order but waits as
// long as a stalled mirror keeps the connection open. So each attempt pins the registry's
// hosts.toml to one mirror, pulls with the per-image timeout, and moves on; afterwards the
// configured hosts.toml (all mirrors, as the runtime task writes it) is restored.
package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/packages"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/runtime/config"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const defaultPullTimeout = 2 * time.Minute

// Run is the images task handler.
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetImages()
	reg, err := kubeimages.ParseRegistry(spec.GetRegistry().GetImageRepository(), spec.GetRegistry().GetMirrors(), spec.GetRegistry().GetInsecureRegistries())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the registry settings of the task", "registry: %v", err)
	}
	refs, err := imageList(ctx, h, spec, reg)
	if err != nil {
		return nil, err
	}
	if spec.GetAction() == taskv1.ImagesAction_IMAGES_ACTION_IMPORT || spec.GetAction() == taskv1.ImagesAction_IMAGES_ACTION_EXPORT {
		if spec.GetArchivePath() == "" || !strings.HasPrefix(spec.GetArchivePath(), "/") {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "pass --archive /path/on/the/node.tar", "archive_path %q must be an absolute path on the node", spec.GetArchivePath())
		}
	}
	cc, err := runtime.Dial(h.Path(runtime.HostSocket(h)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	is := runtimeapi.NewImageServiceClient(cc)
	if _, err := is.ListImages(ctx, &runtimeapi.ListImagesRequest{}); err != nil {
		pulling := spec.GetAction() == taskv1.ImagesAction_IMAGES_ACTION_PULL || spec.GetAction() == taskv1.ImagesAction_IMAGES_ACTION_UNSPECIFIED
		if h.DryRun && pulling {
			// A dry-run on a host whose runtime an earlier step would install: every image
			// would be pulled.
			e.Logf("the container runtime is not running (yet): every image would be pulled")
			for _, ref := range refs {
				h.Record("image", ref, "pull")
			}
			return nil, nil
		}
		return nil, tasks.Errorf("RUNTIME_NOT_READY", "run the runtime task on this node first", "the container runtime does not answer on %s (deckhand-agent --cri-socket): %v", runtime.HostSocket(h), err)
	}

	switch spec.GetAction() {
	case taskv1.ImagesAction_IMAGES_ACTION_PULL, taskv1.ImagesAction_IMAGES_ACTION_UNSPECIFIED:
		return pull(ctx, h, e, is, refs, reg, spec.GetPullTimeout().AsDuration())
	case taskv1.ImagesAction_IMAGES_ACTION_LIST:
		return list(ctx, is, e)
	case taskv1.ImagesAction_IMAGES_ACTION_REMOVE:
		return remove(ctx, h, e, is, refs)
	case taskv1.ImagesAction_IMAGES_ACTION_EXPORT:
		return export(ctx, h, e, is, refs, spec.GetArchivePath())
	case taskv1.ImagesAction_IMAGES_ACTION_IMPORT:
		return importArchive(ctx, h, e, is, spec.GetArchivePath())
	}
	return nil, tasks.Errorf("INVALID_ARGUMENT", "use pull, list, remove, export or import", "unknown images action %v", spec.GetAction())
}

// imageList is the explicit list, or the control-plane images for the version: what the
// installed kubeadm lists (its etcd, CoreDNS and pause tags are its own constants, which
// differ between patch releases), or, before kubeadm is installed, kubeimages' table.
func imageList(ctx context.Context, h *host.Host, spec *taskv1.ImagesSpec, reg kubeimages.Registry) ([]string, error) {
	if len(spec.GetImages()) > 0 {
		var out []string
		for i, img := range spec.GetImages() {
			ref, err := kubeimages.ParseReference(img)
			if err != nil {
				return nil, tasks.Errorf("INVALID_ARGUMENT", "give full image references such as registry.k8s.io/pause:3.10", "images[%d]: %v", i, err)
			}
			out = append(out, ref.String())
		}
		return out, nil
	}
	if spec.GetAction() == taskv1.ImagesAction_IMAGES_ACTION_LIST || spec.GetAction() == taskv1.ImagesAction_IMAGES_ACTION_IMPORT {
		return nil, nil
	}
	refs, err := controlPlaneList(ctx, h, spec, reg)
	if err != nil {
		return nil, err
	}
	for i, img := range spec.GetExtraImages() {
		ref, err := kubeimages.ParseReference(img)
		if err != nil {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "give full image references such as ghcr.io/flannel-io/flannel:v0.28.10", "extra_images[%d]: %v", i, err)
		}
		if !slices.Contains(refs, ref.String()) {
			refs = append(refs, ref.String())
		}
	}
	return refs, nil
}

// controlPlaneList is the images of the spec's Kubernetes version: the installed kubeadm's
// list (`kubeadm config images list`), or Deckhand's table of them before kubeadm is there.
func controlPlaneList(ctx context.Context, h *host.Host, spec *taskv1.ImagesSpec, reg kubeimages.Registry) ([]string, error) {
	refs, err := kubeimages.ControlPlaneImages(spec.GetKubernetesVersion(), reg.ImageRepository)
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give a supported --kubernetes-version", "%v", err)
	}
	v, _, _ := kubeimages.ParseKubernetesVersion(spec.GetKubernetesVersion())
	kubeadm := listingKubeadm(ctx, h, v)
	if kubeadm == "" {
		return refs, nil
	}
	argv := []string{kubeadm, "config", "images", "list", "--kubernetes-version", v, "--image-repository", reg.ImageRepository}
	out, err := h.Query(ctx, argv...)
	if err != nil {
		return nil, tasks.Errorf("IMAGE_LIST_FAILED", "run "+strings.Join(argv, " ")+" on the node to see why", "the installed kubeadm did not list its images: %v", err)
	}
	var listed []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		ref, err := kubeimages.ParseReference(l)
		if err != nil {
			return nil, tasks.Errorf("IMAGE_LIST_FAILED", "run "+strings.Join(argv, " ")+" on the node to see why", "kubeadm config images list printed %q: %v", l, err)
		}
		listed = append(listed, ref.String())
	}
	if len(listed) == 0 {
		return nil, tasks.Errorf("IMAGE_LIST_FAILED", "run "+strings.Join(argv, " ")+" on the node to see why", "kubeadm config images list printed no image")
	}
	return listed, nil
}

// listingKubeadm is the kubeadm whose image list is the version's, "" for none (then
// Deckhand's table). kubeadm lists its own etcd, CoreDNS and pause tags whatever version it
// is asked for, so the list is that of the kubeadm that will run: one an upgrade staged for
// the version (packages.StageDir/VERSION/kubeadm), else the installed one unless it is older
// than the version (kubeadm neither upgrades past nor installs a release newer than itself:
// an upgrade's kubeadm step replaces it first).
func listingKubeadm(ctx context.Context, h *host.Host, version string) string {
	short := func(kubeadm string) string {
		out, err := h.QueryQuiet(ctx, kubeadm, "version", "-o", "short")
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	staged := packages.StageDir + "/" + version + "/" + kubeadmconfig.Kubeadm
	if h.Exists(staged) && short(staged) == version {
		return staged
	}
	if !h.Has(kubeadmconfig.Kubeadm) {
		return ""
	}
	if have := short(kubeadmconfig.Kubeadm); have != "" && kubeimages.CompareReleases(have, version) < 0 {
		return ""
	}
	return kubeadmconfig.Kubeadm
}

func present(ctx context.Context, is runtimeapi.ImageServiceClient, ref string) (*runtimeapi.Image, error) {
	st, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return nil, err
	}
	return st.GetImage(), nil
}

func pull(ctx context.Context, h *host.Host, e *tasks.Emitter, is runtimeapi.ImageServiceClient, refs []string, reg kubeimages.Registry, timeout time.Duration) (map[string]string, error) {
	if timeout <= 0 {
		timeout = defaultPullTimeout
	}
	// Restore the configured hosts.toml of every registry this pull may pin.
	restore := map[string]func(){}
	defer func() {
		for _, fn := range restore {
			fn()
		}
	}()
	var pulled, total uint64
	demoted := map[string]bool{} // sources that failed once are tried last for later images
	for i, ref := range refs {
		img, err := present(ctx, is, ref)
		if err != nil {
			return nil, err
		}
		if img != nil {
			e.Logf("%s is present", ref)
			e.Progress("images", uint64(i+1), uint64(len(refs)), "images")
			continue
		}
		h.Record("image", ref, "pull")
		if h.DryRun {
			continue
		}
		registryHost := strings.SplitN(ref, "/", 2)[0]
		attempts := mirrorsFor(registryHost, reg)
		sort.SliceStable(attempts, func(a, b int) bool { return !demoted[attempts[a]] && demoted[attempts[b]] })
		var lastErr error
		ok := false
		for _, m := range attempts {
			if _, seen := restore[registryHost]; !seen {
				restore[registryHost] = pinRestorer(h, registryHost, reg)
			}
			if err := pin(h, registryHost, m, reg); err != nil {
				return nil, err
			}
			from := m
			if from == "" {
				from = "https://" + registryHost
				if insecureSet(reg)[registryHost] {
					from = "https://" + registryHost + " without TLS verification, then http://" + registryHost
				}
			}
			e.Logf("pulling %s from %s (timeout %v)", ref, from, timeout)
			pctx, cancel := context.WithTimeout(ctx, timeout)
			start := time.Now()
			_, err := is.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			cancel()
			if err == nil {
				img, _ := present(ctx, is, ref)
				size := img.GetSize()
				pulled += size
				total += size
				e.Progress(ref, size, size, "bytes")
				e.Logf("pulled %s (%d bytes) in %v", ref, size, time.Since(start).Round(time.Millisecond))
				ok = true
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			demoted[m] = true
			e.Logf("pull of %s from %s failed after %v: %v; trying the next source", ref, from, time.Since(start).Round(time.Millisecond), trim(err))
		}
		if !ok {
			return nil, tasks.Errorf("PULL_FAILED", "check that a mirror serves this image (crictl pull on the node shows the details)", "%s could not be pulled from any of %d sources: %v", ref, len(attempts), trim(lastErr))
		}
		e.Progress("images", uint64(i+1), uint64(len(refs)), "images")
	}
	return map[string]string{"images": strings.Join(refs, ","), "pulled_bytes": fmt.Sprint(pulled)}, nil
}

func trim(err error) string {
	s := fmt.Sprint(err)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// mirrorsFor lists the sources to try for a registry: its mirrors in order when it is the
// configured repository's registry, then the registry itself ("").
func mirrorsFor(registryHost string, reg kubeimages.Registry) []string {
	if strings.SplitN(reg.ImageRepository, "/", 2)[0] != registryHost {
		return []string{""}
	}
	return append(append([]string{}, reg.Mirrors...), "")
}

func insecureSet(reg kubeimages.Registry) map[string]bool {
	m := map[string]bool{}
	for _, i := range reg.Insecure {
		m[i] = true
	}
	return m
}

// pin makes containerd use only mirror (or the registry itself when mirror is "").
func pin(h *host.Host, registryHost, mirror string, reg kubeimages.Registry) error {
	var mirrors []string
	if mirror != "" {
		mirrors = []string{mirror}
	}
	dir, content, err := config.HostsToml(registryHost, mirrors, insecureSet(reg))
	if err != nil {
		return err
	}
	return os.WriteFile(h.Path(runtime.CertsDir+"/"+dir+"/hosts.toml"), []byte(content), 0o644)
}

// pinRestorer returns a func that puts back the hosts.toml the runtime task configured.
func pinRestorer(h *host.Host, registryHost string, reg kubeimages.Registry) func() {
	dir, content, err := config.HostsToml(registryHost, mirrorsFor(registryHost, reg)[:len(mirrorsFor(registryHost, reg))-1], insecureSet(reg))
	path := h.Path(runtime.CertsDir + "/" + dir + "/hosts.toml")
	old, readErr := os.ReadFile(path)
	_ = os.MkdirAll(h.Path(runtime.CertsDir+"/"+dir), 0o755)
	return func() {
		switch {
		case readErr == nil:
			_ = os.WriteFile(path, old, 0o644)
		case err == nil && len(reg.Mirrors) > 0:
			_ = os.WriteFile(path, []byte(content), 0o644)
		default:
			_ = os.Remove(path)
		}
	}
}

func list(ctx context.Context, is runtimeapi.ImageServiceClient, e *tasks.Emitter) (map[string]string, error) {
	resp, err := is.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, img := range resp.GetImages() {
		for _, tag := range img.GetRepoTags() {
			tags = append(tags, tag)
			e.Logf("%s %d", tag, img.GetSize())
		}
	}
	sort.Strings(tags)
	return map[string]string{"images": strings.Join(tags, ","), "count": fmt.Sprint(len(tags))}, nil
}

func remove(ctx context.Context, h *host.Host, e *tasks.Emitter, is runtimeapi.ImageServiceClient, refs []string) (map[string]string, error) {
	for _, ref := range refs {
		img, err := present(ctx, is, ref)
		if err != nil {
			return nil, err
		}
		if img == nil {
			continue
		}
		h.Record("image", ref, "remove")
		if h.DryRun {
			continue
		}
		if _, err := is.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			return nil, fmt.Errorf("remove %s: %w", ref, err)
		}
		e.Did("removed %s", "would remove %s", ref)
	}
	return map[string]string{"images": strings.Join(refs, ",")}, nil
}

func ctrArgs(h *host.Host, args ...string) []string {
	return append([]string{"ctr", "--address", h.Path(runtime.HostSocket(h)), "--namespace", "k8s.io"}, args...)
}

func export(ctx context.Context, h *host.Host, e *tasks.Emitter, is runtimeapi.ImageServiceClient, refs []string, archive string) (map[string]string, error) {
	for _, ref := range refs {
		img, err := present(ctx, is, ref)
		if err != nil {
			return nil, err
		}
		if img == nil {
			return nil, tasks.Errorf("IMAGE_MISSING", "pull it first (deckctl task run NODE images --action pull)", "%s is not on the node, so it cannot be exported", ref)
		}
	}
	// Idempotent: an archive that already holds exactly these images is left alone.
	if have, err := archiveImages(h.Path(archive)); err == nil && slices.Equal(have, sorted(refs)) {
		e.Logf("%s already holds these %d images", archive, len(refs))
		return map[string]string{"archive": archive}, nil
	}
	if err := h.Run(ctx, fmt.Sprintf("export %d images to %s", len(refs), archive), ctrArgs(h, append([]string{"images", "export", h.Path(archive)}, refs...)...)...); err != nil {
		return nil, tasks.Errorf("EXPORT_FAILED", "check free space and that the directory exists on the node", "export to %s: %v", archive, err)
	}
	return map[string]string{"archive": archive, "images": strings.Join(refs, ",")}, nil
}

func importArchive(ctx context.Context, h *host.Host, e *tasks.Emitter, is runtimeapi.ImageServiceClient, archive string) (map[string]string, error) {
	names, err := archiveImages(h.Path(archive))
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give a tarball made by the images export task (or docker save / ctr images export)", "archive_path %s is not an image archive: %v", archive, err)
	}
	var missing []string
	for _, n := range names {
		img, err := present(ctx, is, n)
		if err != nil {
			return nil, err
		}
		if img == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		e.Logf("all %d images of %s are present", len(names), archive)
		return map[string]string{"images": strings.Join(names, ",")}, nil
	}
	if err := h.Run(ctx, fmt.Sprintf("import %s", strings.Join(missing, ", ")), ctrArgs(h, "images", "import", h.Path(archive))...); err != nil {
		return nil, tasks.Errorf("IMPORT_FAILED", "check the archive and the runtime's free space", "import %s: %v", archive, err)
	}
	return map[string]string{"images": strings.Join(names, ",")}, nil
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// archiveImages reads the image names an OCI or docker image tarball holds.
func archiveImages(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	found := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "index.json":
			found = true
			var idx struct {
				Manifests []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"manifests"`
			}
			if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&idx); err != nil {
				return nil, fmt.Errorf("index.json: %w", err)
			}
			for _, m := range idx.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					names = append(names, n)
				}
			}
		case "manifest.json":
			found = true
			var ms []struct {
				RepoTags []string `json:"RepoTags"`
			}
			if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&ms); err == nil && len(names) == 0 {
				for _, m := range ms {
					names = append(names, m.RepoTags...)
				}
			}
		}
	}
	if !found {
		return nil, errors.New("no index.json or manifest.json in it")
	}
	sort.Strings(names)
	return slices.Compact(names), nil
}

package images_test

import (
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/images"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// BenchmarkPullControlPlane pulls the 7 control-plane images (test-built, 2 x 4 MiB layers
// each) from a real registry on loopback into a real containerd, once through the images
// task (CRI PullImage) and once with `ctr images pull`, in the same run, and reports both
// and their ratio.
func BenchmarkPullControlPlane(b *testing.B) {
	good := mirrorSized(b, 4<<20)
	root := testcluster.HostRoot(b, "bench")
	testcluster.InstallSim(b, root)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := tasks.NewRunner(b.TempDir(), root, map[string]tasks.Handler{"runtime": runtime.Run, "images": images.Run}, log)
	if err != nil {
		b.Fatal(err)
	}
	reg := &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io", Mirrors: []string{good}}
	if res, _ := run(b, r, task("rt", false, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{KubernetesVersion: version, CgroupDriver: "cgroupfs", Registry: reg}}})); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		b.Fatalf("runtime: %v", res)
	}
	refs, _ := kubeimages.ControlPlaneImages(version, "registry.k8s.io")
	h := &host.Host{Root: root}
	ctr := func(args ...string) {
		argv := append([]string{"--address", h.Path(runtime.Socket), "--namespace", "k8s.io"}, args...)
		if out, err := exec.Command("ctr", argv...).CombinedOutput(); err != nil {
			b.Fatalf("ctr %v: %v\n%s", args, err, out)
		}
	}
	removeAll := func() {
		for _, ref := range refs {
			_ = exec.Command("ctr", "--address", h.Path(runtime.Socket), "--namespace", "k8s.io", "images", "rm", "--sync", ref).Run()
		}
	}
	var criTotal, ctrTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		removeAll()
		start := time.Now()
		res, _ := run(b, r, task("pull-"+strings.Repeat("x", i+1), false, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Images{Images: &taskv1.ImagesSpec{
			Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: version, Registry: reg}}}))
		criTotal += time.Since(start)
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			b.Fatalf("pull: %v", res)
		}
		removeAll()
		start = time.Now()
		for _, ref := range refs {
			ctr("images", "pull", "--plain-http", "--hosts-dir", filepath.Join(root, "etc/containerd/certs.d"), ref)
		}
		ctrTotal += time.Since(start)
	}
	b.StopTimer()
	cri := float64(criTotal.Milliseconds()) / float64(b.N)
	ctrMs := float64(ctrTotal.Milliseconds()) / float64(b.N)
	b.ReportMetric(cri, "cri-ms")
	b.ReportMetric(ctrMs, "ctr-ms")
	b.ReportMetric(cri/ctrMs, "cri/ctr")
	b.ReportMetric(0, "ns/op")
}

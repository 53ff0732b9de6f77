package runtime_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/deckhandhq/deckhand/agent/diagnostics"
	"github.com/deckhandhq/deckhand/agent/images"
	"github.com/deckhandhq/deckhand/agent/preflight"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// fakeCRI is a container runtime that answers the CRI calls the tasks make.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer
}

func (fakeCRI) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake-cri", RuntimeVersion: "v9.9.9"}, nil
}

func (fakeCRI) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true}}}}, nil
}

func (fakeCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: "0123456789abcdef", Metadata: &runtimeapi.ContainerMetadata{Name: "kube-apiserver-on-the-custom-socket"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING}}}, nil
}

func (fakeCRI) ListImages(context.Context, *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{{Id: "sha256:1", RepoTags: []string{"registry.k8s.io/pause:3.10"}, Size: 1}}}, nil
}

// serveCRI serves fakeCRI on the unix socket at path.
func serveCRI(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, fakeCRI{})
	runtimeapi.RegisterImageServiceServer(s, fakeCRI{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
}

// TestTasksUseTheConfiguredCRISocket: with deckhand-agent --cri-socket set, the runtime,
// images, diagnostics and preflight tasks talk to (and configure) that socket, not
// containerd's default one (nothing listens there in this test).
func TestTasksUseTheConfiguredCRISocket(t *testing.T) {
	// A short root: a unix socket path is limited to 108 bytes.
	root, err := os.MkdirTemp("", "dh-cri-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	const socket = "/run/custom/cri.sock"
	serveCRI(t, filepath.Join(root, socket))
	// containerd and systemctl stand-ins: the runtime task finds containerd installed and
	// its service enabled and running.
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/containerd"), []byte("#!/bin/sh\necho 'containerd github.com/containerd/containerd v1.7.24 88bf19b2105c8b17560993bee28a01ddc2f97182'\n"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755) // systemd is init

	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{
		"runtime": runtime.Run, "images": images.Run, "diagnostics": diagnostics.Run, "preflight": preflight.Run,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), tasks.WithCRISocket("unix://"+socket))
	if err != nil {
		t.Fatal(err)
	}
	spec := func(s *taskv1.TaskSpec) *taskv1.Task { return &taskv1.Task{Id: tasks.Kind(s), Node: "n1", Spec: s} }

	res, logs := run(t, r, spec(&taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{
		KubernetesVersion: "v1.33.13", CgroupDriver: "systemd", Registry: &taskv1.RegistrySettings{ImageRepository: "registry.k8s.io"}}}}))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["runtime_name"] != "fake-cri" {
		t.Fatalf("runtime task: %v\n%s", res, strings.Join(logs, "\n"))
	}
	crictl, _ := os.ReadFile(filepath.Join(root, "etc/crictl.yaml"))
	toml, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml"))
	if !strings.Contains(string(crictl), "runtime-endpoint: unix://"+socket) || !strings.Contains(string(toml), `address = "`+socket+`"`) {
		t.Fatalf("the runtime task did not configure %s:\ncrictl.yaml:\n%s\nconfig.toml:\n%s", socket, crictl, toml)
	}

	res, logs = run(t, r, spec(&taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Images{Images: &taskv1.ImagesSpec{Action: taskv1.ImagesAction_IMAGES_ACTION_LIST}}}))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["images"] != "registry.k8s.io/pause:3.10" {
		t.Fatalf("images task: %v\n%s", res, strings.Join(logs, "\n"))
	}

	res, logs = run(t, r, spec(&taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("diagnostics task: %v\n%s", res, strings.Join(logs, "\n"))
	}
	if c := bundleFile(t, res.GetArtifact(), "containers.txt"); !strings.Contains(c, "kube-apiserver-on-the-custom-socket") {
		t.Fatalf("the diagnostics bundle does not list the runtime's containers:\n%s", c)
	}

	res, _ = run(t, r, spec(&taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{}}}))
	if got := res.GetOutputs()["check.CRI"]; !strings.HasPrefix(got, "pass") || !strings.Contains(got, socket) {
		t.Fatalf("preflight CRI check: %q", got)
	}
}

func bundleFile(t *testing.T, bundle []byte, name string) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s is not in the bundle: %v", name, err)
		}
		if hdr.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

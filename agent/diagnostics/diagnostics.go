// Package diagnostics collects what a person needs to see why a node's control plane or
// kubelet is unhealthy into one tar.gz bundle: the containers the runtime knows (through
// the CRI API), the logs of containers that exited, the kubelet journal tail, and the
// runtime and kubelet configuration. Secrets (join configs, keys) are never included, and
// every file of the bundle is masked (package secret) for the tokens, certificate keys and
// private keys a log may quote. The kubeadm tasks attach the same bundle to a failure.
package diagnostics

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/secret"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// maxFile bounds one file in the bundle; the bundle travels in the task result.
const maxFile = 256 << 10

// files are copied into the bundle when present (none of them holds a secret).
var files = []string{
	"/etc/os-release", "/etc/containerd/config.toml", "/etc/crictl.yaml",
	"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env",
	"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/swaps",
}

// Run is the diagnostics task handler.
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	lines := t.GetSpec().GetDiagnostics().GetJournalLines()
	bundle, names, err := Collect(ctx, h, int(lines))
	if err != nil {
		return nil, err
	}
	e.Logf("collected %d files (%d bytes compressed)", len(names), len(bundle))
	e.Attach(bundle)
	return map[string]string{"files": strings.Join(names, ","), "bytes": fmt.Sprint(len(bundle))}, nil
}

// Collect builds the bundle.
func Collect(ctx context.Context, h *host.Host, journalLines int) ([]byte, []string, error) {
	if journalLines <= 0 {
		journalLines = 200
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	var names []string
	add := func(name string, data []byte) {
		if len(data) > maxFile {
			data = append([]byte("[... truncated ...]\n"), data[len(data)-maxFile:]...)
		}
		data = []byte(secret.Mask(string(data)))
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg})
		_, _ = tw.Write(data)
		names = append(names, name)
	}
	for _, f := range files {
		if b, err := h.ReadFile(f); err == nil {
			add("files"+f, b)
		}
	}
	journal, err := h.Query(ctx, "journalctl", "-u", "kubelet", "-n", fmt.Sprint(journalLines), "--no-pager")
	if err != nil {
		journal = []byte("journalctl failed: " + err.Error() + "\n")
	}
	add("kubelet.journal", journal)
	containers, logs := criState(ctx, h)
	add("containers.txt", []byte(containers))
	for name, data := range logs {
		add("logs/"+name+".log", data)
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), names, nil
}

// criState lists containers and reads the logs of those that exited.
func criState(ctx context.Context, h *host.Host) (string, map[string][]byte) {
	logs := map[string][]byte{}
	cc, err := runtime.Dial(h.Path(runtime.HostSocket(h)))
	if err != nil {
		return "runtime: " + err.Error() + "\n", logs
	}
	defer cc.Close()
	rs := runtimeapi.NewRuntimeServiceClient(cc)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := rs.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return "runtime: cannot list containers: " + err.Error() + "\n", logs
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-28s %-18s %s\n", "CONTAINER", "NAME", "STATE", "POD")
	for _, c := range resp.GetContainers() {
		fmt.Fprintf(&b, "%-14.13s %-28s %-18s %s/%s\n", c.GetId(), c.GetMetadata().GetName(), c.GetState(), c.GetLabels()["io.kubernetes.pod.namespace"], c.GetLabels()["io.kubernetes.pod.name"])
		if c.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED && c.GetState() != runtimeapi.ContainerState_CONTAINER_UNKNOWN {
			continue
		}
		st, err := rs.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.GetId()})
		if err != nil || st.GetStatus().GetLogPath() == "" {
			continue
		}
		if data, err := os.ReadFile(h.Path(st.GetStatus().GetLogPath())); err == nil {
			logs[c.GetMetadata().GetName()+"-"+c.GetId()[:min(12, len(c.GetId()))]] = data
		}
	}
	return b.String(), logs
}

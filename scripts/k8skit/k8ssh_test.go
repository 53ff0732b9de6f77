package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/podnet"
)

// A kit whose binaries all report the versions kubeadm v1.33.13 lists is complete:
// scripts/k8s.sh prints its directory, keyed by every version, at once and builds nothing,
// also when several run at the same time. etcdctl may report a newer patch of etcd's minor
// (what k8s.sh builds when the module proxy lacks etcd's own version of it). The binaries are
// shell stand-ins, so this needs only the k8s.io/kubernetes module (for kubeadm's constants),
// not the real kit.
func TestK8sShReusesACompleteKitAtOnce(t *testing.T) {
	gover, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, etcdctl := range []string{"3.5.24", "3.5.35"} {
		t.Run("etcdctl "+etcdctl, func(t *testing.T) {
			root := t.TempDir()
			kit := filepath.Join(root, "k8s-v1.33.13-etcd-v3.5.24-coredns-v1.12.0-"+strings.TrimSpace(string(gover)))
			if err := os.MkdirAll(kit, 0o755); err != nil {
				t.Fatal(err)
			}
			say := map[string]string{
				"kubeadm": "v1.33.13", "kubectl": "Client Version: v1.33.13", "etcd": "etcd Version: 3.5.24",
				"etcdctl": "etcdctl version: " + etcdctl, "etcdutl": "etcdutl version: " + etcdctl, "coredns": "CoreDNS-1.12.0", "pause": "pause 3.10", "flanneld": podnet.FlannelVersion,
				"flannel-cni": `{"cniVersion":"0.4.0","supportedVersions":["0.3.1","0.4.0"]}`, "cp": "cp (deckhand lab kit) 1", "install-conf": "usage: install-conf <src> <dest>",
			}
			for _, b := range []string{"kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "etcdctl", "etcdutl", "coredns", "pause", "flanneld", "flannel-cni", "cp", "install-conf"} {
				line, ok := say[b]
				if !ok {
					line = "Kubernetes v1.33.13"
				}
				if err := os.WriteFile(filepath.Join(kit, b), []byte("#!/bin/sh\necho '"+line+"'\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(kit, "kube-flannel.yml"), []byte("        image: ghcr.io/flannel-io/flannel:"+podnet.FlannelVersion+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, file, _, _ := runtime.Caller(0)
			script := filepath.Join(filepath.Dir(file), "..", "k8s.sh")
			// A broken completeness check would start the real 10-minute build: cut it short.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			for i := 0; i < 3; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.CommandContext(ctx, script)
					cmd.Env = append(os.Environ(), "DECKHAND_KIT_DIR="+root)
					out, err := cmd.Output()
					if err != nil {
						t.Errorf("k8s.sh on a complete kit: %v", err)
						return
					}
					lines := strings.Split(strings.TrimSpace(string(out)), "\n")
					if got := lines[len(lines)-1]; got != kit {
						t.Errorf("k8s.sh printed %q as its last line, want the kit %q", got, kit)
					}
				}()
			}
			wg.Wait()
			if ents, _ := filepath.Glob(filepath.Join(kit, ".build.*")); len(ents) > 0 || fileExists(filepath.Join(kit, "src")) {
				t.Errorf("k8s.sh started a build on a complete kit (%v)", ents)
			}
		})
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

package controller_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// A viewer reads no bootstrap token or certificate key of a kubeadm init that printed them
// (kubeadm v1.33's real output, replayed by a stand-in kubeadm), nor of a join retried over
// the join config a killed agent left: not in the live log, the stored log, the record's
// outputs, error or changes.
func TestViewerReadsNoKubeadmSecret(t *testing.T) {
	initOut, err := filepath.Abs("../agent/tasks/testdata/kubeadm-init-v1.33.txt")
	if err != nil {
		t.Fatal(err)
	}
	const (
		initToken = "0123456789abcdef" // secret half of abcdef.0123456789abcdef in the testdata
		initKey   = "9f2c4a61e0b7d8355a1e6c0f3b9d27a4c8e15f60b2d9a7c3e41f8b06d5a2c97e"
		joinToken = "qwerty.0123456789qwerty"
		joinKey   = "2222222222222222222222222222222222222222222222222222222222222222"
		staleKey  = "1111111111111111111111111111111111111111111111111111111111111111"
	)
	secrets := []string{initToken, initKey, "0123456789qwerty", joinKey, "0123456789oldtok", staleKey}

	c := testcluster.New(t, 1)
	cfg := c.AgentConfig("cp-1", c.CreateToken(1))
	// Stand-ins: kubeadm prints what the real one prints; the kubelet and the API server
	// answer as healthy.
	bin := filepath.Join(cfg.Root, "usr/bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "kubeadm"), []byte("#!/bin/sh\ncase \"$1\" in\ninit) cat '"+initOut+"' ;;\njoin) echo 'This node has joined the cluster:' ;;\nesac\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "kubectl"), []byte("#!/bin/sh\necho ok\n"), 0o755)
	// The join config an agent killed mid-join left behind.
	os.MkdirAll(filepath.Join(cfg.Root, "etc/kubernetes/deckhand"), 0o700)
	os.WriteFile(filepath.Join(cfg.Root, "etc/kubernetes/deckhand/kubeadm-join.yaml"), []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: oldtok.0123456789oldtok\ncontrolPlane:\n  certificateKey: "+staleKey+"\n"), 0o600)
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := apiv1.NewTaskServiceClient(c.Client())
	viewer := apiv1.NewTaskServiceClient(c.ClientAs(pki.RoleViewer, "vera"))
	cluster := &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", ControlPlaneEndpoint: "10.250.0.10:6443", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12", CgroupDriver: "systemd"}
	node := &taskv1.NodeSpec{Name: "cp-1", AdvertiseAddress: "10.250.0.10"}

	check := func(id string) {
		t.Helper()
		// Live, as the task runs: the viewer watches from the start.
		stream, err := viewer.WatchTask(ctx, &apiv1.WatchTaskRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		var last *apiv1.TaskRecord
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("watch %s: %v", id, err)
			}
			seen = append(seen, msg.GetEvent().GetLog().GetText())
			if r := msg.GetTask(); r != nil {
				last = r
				seen = append(seen, r.String())
			}
		}
		if last.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			t.Fatalf("%s: %v", id, last)
		}
		got, err := viewer.GetTask(ctx, &apiv1.GetTaskRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, got.String())
		logs, err := viewer.GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, logs.String())
		all := strings.Join(seen, "\n")
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Fatalf("%s: a viewer reads the secret %s:\n%s", id, s, all)
			}
		}
	}

	created, err := admin.CreateTask(ctx, &apiv1.CreateTaskRequest{Id: "init-cp-1", Node: "cp-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{Cluster: cluster, Node: node, UploadCerts: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	check(created.GetTask().GetTask().GetId())
	// A writer still gets the outputs a join needs.
	if rec, _ := watch(t, c, "init-cp-1"); rec.GetResult().GetOutputs()["certificate_key"] != initKey || !strings.HasSuffix(rec.GetResult().GetOutputs()["token"], initToken) {
		t.Fatalf("the init's secret outputs do not reach a writer: %v", rec.GetResult().GetOutputs())
	}

	created, err = admin.CreateTask(ctx, &apiv1.CreateTaskRequest{Id: "join-cp-1", Node: "cp-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
		Cluster: cluster, Node: node, Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, Token: joinToken, CertificateKey: joinKey,
		CaCertHash: "sha256:4c1d0f7e5b2a9c8d3e6f1a0b7c2d9e8f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"}}}})
	if err != nil {
		t.Fatal(err)
	}
	check(created.GetTask().GetTask().GetId())
	rec, _ := watch(t, c, "join-cp-1")
	rewrote := false
	for _, ch := range rec.GetResult().GetChanges() {
		rewrote = rewrote || ch.GetTarget() == "/etc/kubernetes/deckhand/kubeadm-join.yaml" && strings.Contains(ch.GetDetail(), "content not shown")
	}
	if !rewrote {
		t.Fatalf("the rewrite of the stale join config is not recorded as a secret file: %v", rec.GetResult().GetChanges())
	}
}

package controller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// TestAnOldAgentsSecretsAreMaskedByTheController plays an agent of a version that did not
// mask kubeadm's output: it sends the token kubeadm init printed in a log line, and a
// result whose file diff and error show a token and a certificate key. A viewer reads the
// task's log and record with all of them masked.
func TestAnOldAgentsSecretsAreMaskedByTheController(t *testing.T) {
	c := testcluster.New(t, 1)
	cfg := enrolledAgentTLS(t, c, "node-a")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream := openSession(ctx, t, dialWith(t, c.Addrs()[0], cfg), "node-a")
	if _, err := apiv1.NewTaskServiceClient(c.Client()).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-a", Id: "old-agent", Spec: diagnosticsSpec()}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the assignment: %v", err)
		}
		if m.GetAssignment().GetTask().GetId() == "old-agent" {
			break
		}
	}
	const (
		token   = "abcdef.0123456789abcdef"
		certKey = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	)
	for _, line := range []string{
		"[bootstrap-token] Using token: " + token,
		"[upload-certs] Using certificate key:",
		certKey,
	} {
		if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskEvent{TaskEvent: &taskv1.TaskEvent{
			TaskId: "old-agent", Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: line}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	diff := "--- /etc/kubernetes/kubeadm-join.yaml\n+++ /etc/kubernetes/kubeadm-join.yaml\n+discovery:\n+  bootstrapToken:\n+    token: " + token + "\n+controlPlane:\n+  certificateKey: " + certKey + "\n"
	if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskResult{TaskResult: &taskv1.TaskResult{
		TaskId: "old-agent", State: taskv1.TaskState_TASK_STATE_FAILED,
		Error:   &taskv1.TaskError{Reason: "JOIN_FAILED", Message: "kubeadm join --token " + token + " failed", Hint: "retry with --certificate-key " + certKey},
		Changes: []*taskv1.Change{{Kind: "file", Target: "/etc/kubernetes/kubeadm-join.yaml", Detail: diff}},
		Outputs: map[string]string{"note": "used " + token}}}}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	for {
		if _, err := stream.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("session ended: %v", err)
			}
			break
		}
	}

	viewer := apiv1.NewTaskServiceClient(c.ClientAs(pki.RoleViewer, "viewer"))
	secrets := []string{"0123456789abcdef", certKey}
	shows := func(what, text string) error {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				return fmt.Errorf("a viewer's %s shows the secret %q: %s", what, s, text)
			}
		}
		return nil
	}
	testcluster.WaitFor(t, 15*time.Second, func() error {
		r, err := viewer.GetTask(ctx, &apiv1.GetTaskRequest{Id: "old-agent"})
		if err != nil {
			return err
		}
		if r.GetTask().GetResult() == nil {
			return fmt.Errorf("the task is %v, waiting for its result", r.GetTask().GetState())
		}
		if len(r.GetTask().GetResult().GetChanges()) != 1 || !strings.Contains(r.GetTask().GetResult().GetChanges()[0].GetDetail(), "certificateKey:") {
			return fmt.Errorf("the change is not stored: %v", r.GetTask().GetResult())
		}
		if err := shows("GetTask", prototext.Format(r)); err != nil {
			t.Fatal(err)
		}
		logs, err := viewer.GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: "old-agent"})
		if err != nil {
			return err
		}
		if len(logs.GetEvents()) < 3 {
			return fmt.Errorf("%d log events stored, want 3", len(logs.GetEvents()))
		}
		if !strings.Contains(prototext.Format(logs), "Using token: abcdef.") {
			return fmt.Errorf("the token line is missing or masked whole: %s", prototext.Format(logs))
		}
		if err := shows("GetTaskLogs", prototext.Format(logs)); err != nil {
			t.Fatal(err)
		}
		return nil
	})
}

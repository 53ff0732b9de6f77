package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

// putLog stores n log lines of about 4 KB for task id, as a controller records them.
func (s *listServer) putLog(t *testing.T, id string, n int) {
	t.Helper()
	start := time.Now().Add(-time.Hour)
	filler := strings.Repeat("y", 4000)
	var ops []store.Op
	for i := range n {
		at := start.Add(time.Duration(i) * time.Millisecond)
		ev := &taskv1.TaskEvent{TaskId: id, Time: timestamppb.New(at), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: fmt.Sprintf("line-%05d %s", i, filler)}}}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, store.Put(fmt.Sprintf("%s%s/%020d-r1-%04d", tasks.EventsPrefix, id, at.UnixNano(), 0), b))
		if len(ops) == 64 || i == n-1 {
			if _, err := s.st.Txn(context.Background(), store.Txn{Then: ops}); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
}

// A task keeps up to 4 MiB of log per replica, gRPC's default message limit: a log past it
// made deckctl task logs and deckctl logs (a workflow's) fail with ResourceExhausted for good.
// Both page, and deckctl prints every line once, in order.
func TestLogsLargerThanAMessagePrintWhole(t *testing.T) {
	s := newListServer(t)
	ctx := context.Background()
	const lines = 1300 // about 5.2 MB
	s.put(t, tasks.Prefix+"big-log", bigTask("big-log", 0))
	s.putLog(t, "big-log", lines)

	if err := s.reg.Enroll(ctx, "cp-1", "m-cp-1", "s-cp-1"); err != nil {
		t.Fatal(err)
	}
	wf, err := s.wf.Create(ctx, &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{
		KubernetesVersion: "v1.33.13", PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12"}}}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	s.putLog(t, wf.GetId()+".cp-1.preflight.1", lines)

	check := func(what, out string) {
		t.Helper()
		if n := strings.Count(out, "line-"); n != lines {
			t.Fatalf("%s printed %d of %d lines", what, n, lines)
		}
		last := -1
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var i int
			at := strings.Index(l, "line-")
			if _, err := fmt.Sscanf(l[at:], "line-%05d", &i); err != nil || i != last+1 {
				t.Fatalf("%s: line %d follows line %d (%v)", what, i, last, err)
			}
			last = i
		}
	}
	out, err := s.deckctl("task", "logs", "big-log")
	if err != nil {
		t.Fatalf("deckctl task logs: %v", err)
	}
	check("deckctl task logs", out)
	out, err = s.deckctl("logs", wf.GetId())
	if err != nil {
		t.Fatalf("deckctl logs (a workflow): %v", err)
	}
	check("deckctl logs (a workflow)", out)
	out, err = s.deckctl("-o", "json", "task", "logs", "big-log")
	if err != nil || strings.Count(out, "line-") != lines {
		t.Fatalf("deckctl -o json task logs: %d lines, %v", strings.Count(out, "line-"), err)
	}

	// The API: pages stay under the limit, with or without a page size.
	taskAPI := apiv1.NewTaskServiceClient(s.client(t))
	for _, size := range []int32{0, 400, 5000} {
		got, pages := 0, 0
		for token := ""; ; pages++ {
			resp, err := taskAPI.GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: "big-log", PageSize: size, PageToken: token})
			if err != nil {
				t.Fatalf("page %d of size %d: %v", pages, size, err)
			}
			if size > 0 && len(resp.GetEvents()) > min(int(size), 1000) {
				t.Fatalf("page size %d: %d events", size, len(resp.GetEvents()))
			}
			got += len(resp.GetEvents())
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if got != lines {
			t.Fatalf("page size %d: %d events of %d", size, got, lines)
		}
	}
	if _, err := taskAPI.GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: "other", PageToken: "bm90LWEtdG9rZW4"}); err == nil {
		t.Fatal("a bad page token was accepted")
	}
}

// CancelTask answers with the record as lists do: without its artifact, which could be too
// large for the message (cancelling a finished task returns it unchanged).
func TestCancelTaskLeavesTheArtifactOut(t *testing.T) {
	s := newListServer(t)
	s.put(t, tasks.Prefix+"diag-done", bigTask("diag-done", 7<<19))
	resp, err := apiv1.NewTaskServiceClient(s.client(t)).CancelTask(context.Background(), &apiv1.CancelTaskRequest{Id: "diag-done"})
	if err != nil {
		t.Fatalf("CancelTask of a finished task with a 3.5 MB artifact: %v", err)
	}
	if len(resp.GetTask().GetResult().GetArtifact()) != 0 || resp.GetTask().GetArtifactSize() != 7<<19 {
		t.Fatalf("CancelTask returned %d artifact bytes, artifact_size %d", len(resp.GetTask().GetResult().GetArtifact()), resp.GetTask().GetArtifactSize())
	}
	if out, err := s.deckctl("task", "cancel", "diag-done"); err != nil || !strings.Contains(out, "diag-done") {
		t.Fatalf("deckctl task cancel: %v\n%s", err, out)
	}
}

package controller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func diagnosticsSpec() *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}
}

// storeFootprint is what an agent's flood can leave behind: the bytes of the embedded
// store's files on disk and the raft index.
func storeFootprint(t *testing.T, c *testcluster.Cluster) (diskBytes int64, applied float64) {
	t.Helper()
	_ = filepath.Walk(c.Controllers[0].Dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			diskBytes += info.Size()
		}
		return nil
	})
	applied, err := c.Metric(0, "deckhand_raft_applied_index")
	if err != nil {
		t.Fatal(err)
	}
	return diskBytes, applied
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestACompromisedAgentCannotSinkTheControllers plays an agent whose host was taken over:
// with its real certificate it opens a raw session and floods the controller with huge
// facts and task events. The store must stay within the documented bounds, the excess must
// be counted, and a well-behaved agent must keep working.
func TestACompromisedAgentCannotSinkTheControllers(t *testing.T) {
	c := testcluster.New(t, 1)
	token := c.CreateToken(0)
	for _, n := range []string{"node-a", "node-b"} {
		if _, err := c.StartAgent(c.AgentConfig(n, token)); err != nil {
			t.Fatal(err)
		}
	}
	testcluster.WaitFor(t, 15*time.Second, func() error { return allReady(t, c, 2) })

	// node-a is compromised: its key now speaks a raw session.
	a := c.Agents["node-a"]
	c.StopAgent("node-a")
	certPEM, _ := readFile(t, a.Dir, "node.crt")
	keyPEM, _ := readFile(t, a.Dir, "node.key")
	cfg, err := clientconfig.New(nil, []byte(c.AdminTLS().CA), certPEM, keyPEM).TLS()
	if err != nil {
		t.Fatal(err)
	}
	cc := dialWith(t, c.Addrs()[0], cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	disk0, applied0 := storeFootprint(t, c)
	heap0 := heapInUse()
	start := time.Now()

	stream := openSession(ctx, t, cc, "node-a")
	huge := strings.Repeat("x", 1<<20)
	send := func(m *agentv1.SessionRequest) bool {
		err := stream.Send(m)
		return err == nil
	}
	open := true
	// Small facts, each different, as fast as the stream takes them: coalesced.
	for i := 0; i < 200 && open; i++ {
		open = send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Facts{Facts: &agentv1.Facts{Hostname: fmt.Sprint("h-", i)}}})
	}
	// Huge facts: dropped.
	for i := 0; i < 50 && open; i++ {
		open = send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Facts{Facts: &agentv1.Facts{Hostname: fmt.Sprint(i, huge)}}})
	}
	// A task for node-a, so that its events count as that task's log.
	tasks := apiv1.NewTaskServiceClient(c.Client())
	if _, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-a", Id: "flooded", Spec: diagnosticsSpec()}); err != nil {
		t.Fatal(err)
	}
	for open {
		m, err := stream.Recv()
		if err != nil {
			open = false
			break
		}
		if m.GetAssignment().GetTask().GetId() == "flooded" {
			break
		}
	}
	event := func(text string) *agentv1.SessionRequest {
		return &agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskEvent{TaskEvent: &taskv1.TaskEvent{
			TaskId: "flooded", Time: timestamppb.Now(), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: text}}}}}
	}
	for i := 0; i < 100 && open; i++ {
		open = send(event(fmt.Sprint(i, huge)))
	}
	line := strings.Repeat("y", 4000)
	for i := 0; i < 5000 && open; i++ {
		open = send(event(fmt.Sprint(i, line)))
	}
	// The last words: small facts and the task's result, which the controller writes
	// after the events it queued.
	if open {
		open = send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Facts{Facts: &agentv1.Facts{Hostname: "final"}}})
	}
	if open {
		open = send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskResult{TaskResult: &taskv1.TaskResult{
			TaskId: "flooded", State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Artifact: make([]byte, sessions.MaxArtifactBytes+1),
			Outputs: map[string]string{"big": huge[:256<<10]}}}})
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
	nodesAPI := apiv1.NewNodeServiceClient(c.Client())
	if open {
		testcluster.WaitFor(t, 30*time.Second, func() error {
			n, err := nodesAPI.GetNode(ctx, &apiv1.GetNodeRequest{Name: "node-a"})
			if err != nil {
				return err
			}
			if h := n.GetNode().GetFacts().GetHostname(); h != "final" {
				return fmt.Errorf("node-a's hostname is %.20q", h)
			}
			r, err := tasks.GetTask(ctx, &apiv1.GetTaskRequest{Id: "flooded"}, grpc.MaxCallRecvMsgSize(1<<30))
			if err != nil {
				return err
			}
			if r.GetTask().GetResult() == nil {
				return fmt.Errorf("flooded task is %v", r.GetTask().GetState())
			}
			return nil
		})
	}
	elapsed := time.Since(start)

	n, err := nodesAPI.GetNode(ctx, &apiv1.GetNodeRequest{Name: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &apiv1.GetTaskLogsResponse{}
	for token := ""; ; {
		page, err := tasks.GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: "flooded", PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		logs.Events = append(logs.Events, page.GetEvents()...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	logBytes := 0
	for _, ev := range logs.GetEvents() {
		logBytes += proto.Size(ev)
	}
	rec, err := tasks.GetTask(ctx, &apiv1.GetTaskRequest{Id: "flooded"}, grpc.MaxCallRecvMsgSize(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	disk1, applied1 := storeFootprint(t, c)
	heap1 := heapInUse()
	t.Logf("flood took %v: data dir %+d bytes, %v raft entries, heap in use %+d bytes; stored: facts %d bytes, task log %d events %d bytes, task record %d bytes",
		elapsed.Round(time.Millisecond), disk1-disk0, applied1-applied0, heap1-heap0, proto.Size(n.GetNode().GetFacts()), len(logs.GetEvents()), logBytes, proto.Size(rec.GetTask()))
	dropped, err := c.Metric(0, "deckhand_agent_messages_dropped_total")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deckhand_agent_messages_dropped_total: %v", dropped)
	full, _ := c.Metric(0, "deckhand_agent_messages_dropped_total", "reason", sessions.DropTaskLogFull)
	rate, _ := c.Metric(0, "deckhand_agent_messages_dropped_total", "reason", sessions.DropEventRate)
	if full+rate == 0 {
		t.Errorf("20 MB of 4 KB lines in a few seconds: none dropped (task_log_full %v, event_rate %v)", full, rate)
	}

	const (
		factsBound   = sessions.MaxFactsBytes
		taskLogBound = sessions.MaxTaskLogBytes + 1<<10 // and the line that says the rest was dropped
		recordBound  = 64 << 10
		diskBound    = 32 << 20
	)
	if rec.GetTask().GetResult().GetError().GetReason() != "OUTPUTS_TOO_LARGE" || len(rec.GetTask().GetResult().GetArtifact()) != 0 {
		t.Errorf("a result with 256 KiB of outputs and a 3 MiB artifact was stored as %v", rec.GetTask().GetResult().GetError())
	}
	if s := proto.Size(n.GetNode().GetFacts()); s > factsBound {
		t.Errorf("node-a's stored facts are %d bytes, over the %d-byte bound", s, factsBound)
	}
	if logBytes > taskLogBound {
		t.Errorf("the flooded task's stored log is %d bytes, over the %d-byte bound", logBytes, taskLogBound)
	}
	if s := proto.Size(rec.GetTask()); s > recordBound {
		t.Errorf("the flooded task's record is %d bytes, over %d", s, recordBound)
	}
	if d := disk1 - disk0; d > diskBound {
		t.Errorf("the data dir grew by %d bytes, over %d", d, diskBound)
	}
	for _, reason := range []string{sessions.DropFactsTooLarge, sessions.DropFactsCoalesced, sessions.DropLogLineTruncated, sessions.DropOutputsTooLarge, sessions.DropArtifactTooLarge} {
		if v, err := c.Metric(0, "deckhand_agent_messages_dropped_total", "reason", reason); err != nil || v == 0 {
			t.Errorf("deckhand_agent_messages_dropped_total{reason=%q} = %v, %v; want > 0", reason, v, err)
		}
	}

	// The well-behaved agent keeps working.
	created, err := tasks.CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-b", Spec: diagnosticsSpec()})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := watch(t, c, created.GetTask().GetTask().GetId()); got.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("node-b's task after the flood: %v", got)
	}
}

// TestAnOversizedHelloIsRefusedNamingTheField: what an agent says about itself is checked
// at the edge, with an error that names the field and the limit.
func TestAnOversizedHelloIsRefusedNamingTheField(t *testing.T) {
	c := testcluster.New(t, 1)
	cfg := enrolledAgentTLS(t, c, "node-a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(dialWith(t, c.Addrs()[0], cfg)).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: &agentv1.Hello{NodeName: "node-a",
		Facts: &agentv1.Facts{Hostname: "node-a", Kernel: strings.Repeat("k", 2*sessions.MaxFactsString)}}}})
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "hello.facts.kernel: 2048 bytes, at most 1024") {
		t.Fatalf("a hello with a 2 KiB kernel string: %v", err)
	}
	n, err := apiv1.NewNodeServiceClient(c.Client()).GetNode(ctx, &apiv1.GetNodeRequest{Name: "node-a"})
	if err != nil || len(n.GetNode().GetFacts().GetKernel()) > sessions.MaxFactsString {
		t.Fatalf("node-a after the refused hello: %v", err)
	}
}

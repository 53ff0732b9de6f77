package sessions

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deckhandhq/deckhand/internal/features"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestCheckHelloNamesTheFieldOverItsLimit(t *testing.T) {
	long := strings.Repeat("x", MaxFactsString+1)
	cases := []struct {
		hello *agentv1.Hello
		field string
	}{
		{&agentv1.Hello{Facts: &agentv1.Facts{Hostname: long}}, "hello.facts.hostname"},
		{&agentv1.Hello{Facts: &agentv1.Facts{Runtime: &agentv1.RuntimeFacts{Version: long}}}, "hello.facts.runtime.version"},
		{&agentv1.Hello{Facts: &agentv1.Facts{IpAddresses: make([]string, MaxFactsItems+1)}}, "hello.facts.ip_addresses"},
		{&agentv1.Hello{Facts: &agentv1.Facts{KubeVersions: map[string]string{"kubelet": long}}}, "hello.facts.kube_versions[kubelet]"},
		{&agentv1.Hello{Facts: &agentv1.Facts{IpAddresses: []string{strings.Repeat("y", MaxFactsBytes)}}}, "hello.facts: "},
		{&agentv1.Hello{AgentVersion: strings.Repeat("v", MaxHelloString+1)}, "hello.agent_version"},
		{&agentv1.Hello{KnownTaskIds: make([]string, MaxHelloTaskIDs+1)}, "hello.known_task_ids"},
		{&agentv1.Hello{Features: make([]string, features.MaxFeatures+1)}, "hello.features: 33 features"},
		{&agentv1.Hello{Features: []string{"network.packed-routes", strings.Repeat("f", features.MaxFeatureName+1)}}, "hello.features: feature 1: 65 bytes"},
		{&agentv1.Hello{Features: []string{""}}, "hello.features: feature 0: 0 bytes"},
		{&agentv1.Hello{Features: []string{"network.Packed\x1b"}}, "hello.features: feature 0"},
		{&agentv1.Hello{Features: []string{"a", "b", "a"}}, `hello.features: feature "a" is listed twice`},
		{&agentv1.Hello{Facts: &agentv1.Facts{Certificates: make([]*agentv1.Certificate, MaxFactsCertificates+1)}}, "hello.facts.certificates: 33 items"},
		{&agentv1.Hello{Facts: &agentv1.Facts{Certificates: []*agentv1.Certificate{{Name: "apiserver"}, {Name: "api\x1b[2Jserver"}}}}, "hello.facts.certificates[1].name"},
		{&agentv1.Hello{Facts: &agentv1.Facts{Certificates: []*agentv1.Certificate{{Name: "apiserver", RenewedBy: "cron"}}}}, "hello.facts.certificates[0].renewed_by"},
	}
	for _, c := range cases {
		err := CheckHello(c.hello)
		if err == nil || !strings.HasPrefix(err.Error(), c.field) {
			t.Errorf("want an error about %s, got %v", c.field, err)
		}
	}
	ok := &agentv1.Hello{NodeName: "n1", AgentVersion: "v0.1.0", Features: features.Agent(), Facts: &agentv1.Facts{Hostname: "n1", IpAddresses: []string{"10.0.0.1"}, KubeVersions: map[string]string{"kubelet": "v1.33.1"},
		Certificates: []*agentv1.Certificate{{Name: "admin.conf", RenewedBy: "kubeadm"}, {Name: "kubelet-client", RenewedBy: "kubelet"}, {Name: "etcd-ca"}}}}
	if err := CheckHello(ok); err != nil {
		t.Fatalf("a normal hello: %v", err)
	}
}

func logLine(id, text string) *taskv1.TaskEvent {
	return &taskv1.TaskEvent{TaskId: id, Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: text}}}
}

func TestEventsAreCutCappedPerTaskAndRateLimitedPerNode(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	if out := l.Event("n1", logLine("never-assigned", "x")); len(out) != 0 {
		t.Fatal("an event of a task never assigned to the node was kept")
	}
	l.Assigned("n1", "t1")
	out := l.Event("n1", logLine("t1", strings.Repeat("z", 1<<20)))
	if len(out) != 1 || len(out[0].GetLog().GetText()) > MaxLogLineBytes || !strings.HasSuffix(out[0].GetLog().GetText(), "(1048576 bytes)") {
		t.Fatalf("a 1 MiB line: %d events, %d bytes", len(out), len(out[0].GetLog().GetText()))
	}
	// The node's event budget runs out long before a task's log is full...
	kept := 0
	for range 10000 {
		kept += len(l.Event("n1", logLine("t1", strings.Repeat("a", 4000))))
	}
	if kept*4000 > EventBurstBytes+8000 {
		t.Fatalf("%d lines of 4000 bytes kept at once, the burst is %d bytes", kept, EventBurstBytes)
	}
	// ...and refills with time, until the task's log is full: then one line says so.
	var last *taskv1.TaskEvent
	for range 30 {
		now = now.Add(time.Second)
		for range 100 {
			for _, ev := range l.Event("n1", logLine("t1", strings.Repeat("b", 4000))) {
				last = ev
			}
		}
	}
	if !strings.Contains(last.GetLog().GetText(), "later lines are dropped") {
		t.Fatalf("the last line kept is %.60q, not the note that the log is full", last.GetLog().GetText())
	}
	for _, reason := range []string{DropEventUnknownTask, DropLogLineTruncated, DropEventRate, DropTaskLogFull} {
		if v := dropped(l, reason); v == 0 {
			t.Errorf("no drop counted as %s", reason)
		}
	}
}

func TestResultsAreBounded(t *testing.T) {
	l := NewLimiter(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	res, notes := l.Result("n1", &taskv1.TaskResult{TaskId: "t1", State: taskv1.TaskState_TASK_STATE_SUCCEEDED,
		Outputs:  map[string]string{"version": "v1.33.1"},
		Artifact: make([]byte, MaxArtifactBytes+1),
		Changes:  []*taskv1.Change{{Kind: "file", Target: "/etc/x", Detail: strings.Repeat("d", 2*MaxChangeDetailBytes)}},
		Error:    &taskv1.TaskError{Message: strings.Repeat("m", 2*MaxErrorTextBytes)}})
	if res.GetArtifact() != nil || len(notes) != 1 || res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED ||
		len(res.GetChanges()[0].GetDetail()) > MaxChangeDetailBytes || len(res.GetError().GetMessage()) > MaxErrorTextBytes {
		t.Fatalf("bounded result: state %v, artifact %d bytes, detail %d bytes, message %d bytes, %d notes", res.GetState(), len(res.GetArtifact()), len(res.GetChanges()[0].GetDetail()), len(res.GetError().GetMessage()), len(notes))
	}
	res, _ = l.Result("n1", &taskv1.TaskResult{TaskId: "t2", State: taskv1.TaskState_TASK_STATE_SUCCEEDED,
		Outputs: map[string]string{"join": strings.Repeat("j", MaxOutputsBytes)}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "OUTPUTS_TOO_LARGE" || res.GetOutputs() != nil {
		t.Fatalf("a result with too many outputs: %v", res)
	}
}

func dropped(l *Limiter, reason string) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collector())
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestDropsAreLoggedNamingTheNodeAtMostOncePerInterval(t *testing.T) {
	var buf strings.Builder
	now := time.Unix(1000, 0)
	l := NewLimiter(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	for range 10000 {
		l.Drop("n1", DropEventRate, 1)
	}
	if c := strings.Count(buf.String(), "node=n1"); c != 1 {
		t.Fatalf("10,000 drops in one instant wrote %d lines naming the node, want 1:\n%s", c, buf.String())
	}
	l.Report("n1") // the session ended: the rest is reported
	if !strings.Contains(buf.String(), "event_rate=9999") {
		t.Fatalf("the drops after the first line were not reported when the session ended:\n%s", buf.String())
	}
	now = now.Add(DropLogInterval)
	l.Drop("n1", DropFactsTooLarge, 1)
	if c := strings.Count(buf.String(), "node=n1"); c != 3 {
		t.Fatalf("a drop after the interval was not logged:\n%s", buf.String())
	}
}

// A line is masked before it is cut: a token across the cut leaves none of its secret, a
// huge line's marker counts all its bytes, and nothing exceeds the limit.
func TestLinesAreMaskedBeforeTheyAreCut(t *testing.T) {
	const tok = "abcdef.0123456789abcdef"
	for _, tc := range []struct {
		name string
		in   string
		cut  bool
	}{
		{"short", "[bootstrap-token] Using token: " + tok, false},
		{"across the cut", strings.Repeat("x", MaxLogLineBytes-30) + " token " + tok + strings.Repeat(" tail", 20), true},
		{"huge", strings.Repeat("é", MaxLogLineBytes) + tok, true},
	} {
		got, cut := maskLine(tc.in, MaxLogLineBytes)
		if strings.Contains(got, "0123456789") || cut != tc.cut || len(got) > MaxLogLineBytes || !utf8.ValidString(got) {
			t.Errorf("%s: cut %v, %d bytes, ends %q", tc.name, cut, len(got), got[max(0, len(got)-60):])
		}
		if tc.cut && !strings.HasSuffix(got, fmt.Sprintf("… (%d bytes)", len(tc.in))) {
			t.Errorf("%s: the marker does not count the line's %d bytes: %q", tc.name, len(tc.in), got[max(0, len(got)-60):])
		}
	}
}

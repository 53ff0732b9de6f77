package tasks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
	"github.com/deckhandhq/deckhand/internal/wirelimits"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func diagTask(id string, dry bool) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "n1", DryRun: dry, Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}}
}

func runSync(t *testing.T, r *Runner, task *taskv1.Task) (*taskv1.TaskResult, []*taskv1.TaskEvent) {
	t.Helper()
	var mu sync.Mutex
	var events []*taskv1.TaskEvent
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), task, func(ev *taskv1.TaskEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() }, func(res *taskv1.TaskResult) { done <- res })
	select {
	case res := <-done:
		mu.Lock()
		defer mu.Unlock()
		return res, events
	case <-time.After(10 * time.Second):
		t.Fatal("task did not finish")
	}
	return nil, nil
}

func TestJournalReplaysAcrossRestart(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	var runs atomic.Int32
	handlers := map[string]Handler{"diagnostics": func(ctx context.Context, task *taskv1.Task, h *host.Host, e *Emitter) (map[string]string, error) {
		runs.Add(1)
		e.Logf("working")
		_, err := h.WriteFile("/etc/marker", []byte("x"), 0o644)
		return map[string]string{"answer": "42"}, err
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, _ := NewRunner(dir, root, handlers, log)
	res, events := runSync(t, r, diagTask("t-1", false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetOutputs()["answer"] != "42" || len(res.GetChanges()) != 1 || res.GetReplayed() {
		t.Fatalf("first run: %v", res)
	}
	if len(events) < 2 {
		t.Fatalf("events: %v", events)
	}
	// A new runner over the same data dir (an agent restart) replays, it does not rerun.
	r2, _ := NewRunner(dir, root, handlers, log)
	res2, _ := runSync(t, r2, diagTask("t-1", false))
	if runs.Load() != 1 || !res2.GetReplayed() || res2.GetOutputs()["answer"] != "42" {
		t.Fatalf("replay: runs=%d %v", runs.Load(), res2)
	}
	// A different ID runs, and finds nothing left to change.
	res3, _ := runSync(t, r2, diagTask("t-2", false))
	if runs.Load() != 2 || len(res3.GetChanges()) != 0 {
		t.Fatalf("second task: runs=%d changes=%v", runs.Load(), res3.GetChanges())
	}
}

func TestUnknownKindAndCancellation(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	started := make(chan struct{})
	r, _ := NewRunner(t.TempDir(), t.TempDir(), map[string]Handler{"diagnostics": func(ctx context.Context, _ *taskv1.Task, _ *host.Host, _ *Emitter) (map[string]string, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}}, log)
	res, _ := runSync(t, r, &taskv1.Task{Id: "t-x", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Drain{Drain: &taskv1.DrainSpec{}}}})
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "UNSUPPORTED_TASK" {
		t.Fatalf("unknown kind: %v", res)
	}
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), diagTask("t-c", false), func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	<-started
	if !r.Cancel("t-c") {
		t.Fatal("cancel found no running task")
	}
	if res := <-done; res.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED {
		t.Fatalf("cancelled task: %v", res)
	}
}

const (
	initToken   = "abcdef.0123456789abcdef"
	initCertKey = "9f2c4a61e0b7d8355a1e6c0f3b9d27a4c8e15f60b2d9a7c3e41f8b06d5a2c97e"
	initCAHash  = "sha256:4c1d0f7e5b2a9c8d3e6f1a0b7c2d9e8f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"
)

// leaks lists where a secret shows in what a viewer reads of a task: its events, its
// error and hint, its non-secret outputs and its changes.
func leaks(res *taskv1.TaskResult, events []*taskv1.TaskEvent, secrets ...string) []string {
	var seen []string
	check := func(where, s string) {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				seen = append(seen, fmt.Sprintf("%s: %q", where, s))
			}
		}
	}
	for _, ev := range events {
		check("log", ev.GetLog().GetText())
		check("progress", ev.GetProgress().GetItem())
	}
	check("error", res.GetError().GetMessage())
	check("hint", res.GetError().GetHint())
	for k, v := range res.GetOutputs() {
		if k != "token" && k != "certificate_key" {
			check("output "+k, v)
		}
	}
	for _, c := range res.GetChanges() {
		check("change", c.GetTarget()+" "+c.GetDetail())
	}
	return seen
}

// TestKubeadmInitOutputReachesNoViewer replays the real output of kubeadm v1.33 init
// (testdata: the phases' lines as kubeadm prints them, with "[bootstrap-token] Using
// token:", "[upload-certs] Using certificate key:" and the join commands) through the
// runner the way a task meets it: a command's stdout and stderr, lines the task logs
// itself, an error quoting the output, outputs and changes.
func TestKubeadmInitOutputReachesNoViewer(t *testing.T) {
	out, err := os.ReadFile("testdata/kubeadm-init-v1.33.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "[bootstrap-token] Using token: "+initToken) || !strings.Contains(string(out), "--certificate-key "+initCertKey) {
		t.Fatal("testdata is not kubeadm init output with a token and a certificate key")
	}
	path, _ := filepath.Abs("testdata/kubeadm-init-v1.33.txt")
	handler := func(ctx context.Context, task *taskv1.Task, h *host.Host, e *Emitter) (map[string]string, error) {
		if _, err := h.Query(ctx, "cat", path); err != nil { // stdout, line by line
			return nil, err
		}
		for _, l := range strings.Split(string(out), "\n") { // lines the task logs itself
			e.Log("stderr", l)
		}
		e.Logf("kubeadm init printed the join command kubeadm join 10.250.0.10:6443 --token %s --certificate-key %s", initToken, initCertKey)
		e.Progress("join with "+initToken, 1, 2, "steps")
		h.Record("command", "kubeadm join 10.250.0.10:6443 --token "+initToken+" --certificate-key "+initCertKey, "print the join command")
		outputs := map[string]string{"token": initToken, "certificate_key": initCertKey, "ca_cert_hash": initCAHash, "join_command": "kubeadm join 10.250.0.10:6443 --token " + initToken}
		if task.GetId() == "init-fails" {
			return outputs, Errorf("INIT_FAILED", "rerun with --certificate-key "+initCertKey, "kubeadm init: exit status 1: %s", out)
		}
		return outputs, nil
	}
	r, _ := NewRunner(t.TempDir(), t.TempDir(), map[string]Handler{"kubeadm_init": handler}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, id := range []string{"init", "init-fails"} {
		res, events := runSync(t, r, &taskv1.Task{Id: id, Node: "cp-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmInit{KubeadmInit: &taskv1.KubeadmInitSpec{UploadCerts: true}}}})
		if len(events) < 170 {
			t.Fatalf("%s: only %d events: %v", id, len(events), res)
		}
		// The secret half of the token and the certificate key; the token ID and the CA
		// hash are not secrets.
		if l := leaks(res, events, "0123456789abcdef", initCertKey); len(l) > 0 {
			t.Fatalf("%s: secrets reach a viewer:\n%s", id, strings.Join(l, "\n"))
		}
		var text []string
		for _, ev := range events {
			text = append(text, ev.GetLog().GetText())
		}
		all := strings.Join(text, "\n")
		for _, want := range []string{"[bootstrap-token] Using token: abcdef.", "--discovery-token-ca-cert-hash " + initCAHash, "[upload-certs] Using certificate key:", "Your Kubernetes control-plane has initialized successfully!"} {
			if !strings.Contains(all, want) {
				t.Fatalf("%s: the log lost %q:\n%s", id, want, all)
			}
		}
		// The secret outputs still reach the controller, which shows them to writers only.
		if res.GetOutputs()["token"] != initToken || res.GetOutputs()["certificate_key"] != initCertKey || res.GetOutputs()["ca_cert_hash"] != initCAHash {
			t.Fatalf("%s: outputs: %v", id, res.GetOutputs())
		}
	}
}

// TestSpecSecretsMaskedByValue: a secret the task carries is masked wherever it shows,
// even in a form no pattern knows (the token's secret half alone).
func TestSpecSecretsMaskedByValue(t *testing.T) {
	const tok = "qwerty.0123456789qwerty"
	r, _ := NewRunner(t.TempDir(), t.TempDir(), map[string]Handler{"kubeadm_join": func(ctx context.Context, task *taskv1.Task, h *host.Host, e *Emitter) (map[string]string, error) {
		e.Logf("token secret is %s", "0123456789qwerty")
		return map[string]string{"joined": "worker"}, Errorf("JOIN_FAILED", "", "bootstrap secret 0123456789qwerty was rejected")
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, events := runSync(t, r, &taskv1.Task{Id: "join", Node: "w-1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{Token: tok, CertificateKey: initCertKey}}}})
	if l := leaks(res, events, "0123456789qwerty"); len(l) > 0 {
		t.Fatalf("secrets reach a viewer:\n%s", strings.Join(l, "\n"))
	}
}

func taskWith(id string, spec *taskv1.TaskSpec, dry bool) *taskv1.Task {
	return &taskv1.Task{Id: id, Node: "n1", DryRun: dry, Spec: spec}
}

// TestJournalRefusesAReusedTaskID: a task ID that ran one task is never answered with that
// task's result for another: a pre-created diagnostics task under a preflight step's ID
// does not make the preflight "succeed".
func TestJournalRefusesAReusedTaskID(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	var runs atomic.Int32
	handler := func(ctx context.Context, task *taskv1.Task, h *host.Host, e *Emitter) (map[string]string, error) {
		runs.Add(1)
		return map[string]string{"kind": Kind(task.GetSpec())}, nil
	}
	handlers := map[string]Handler{"diagnostics": handler, "preflight": handler}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, _ := NewRunner(dir, root, handlers, log)
	diag := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}
	preflight := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{}}}
	const id = "WF.node.preflight.2"
	if res, _ := runSync(t, r, taskWith(id, diag, false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("first task: %v", res)
	}
	r2, _ := NewRunner(dir, root, handlers, log) // across an agent restart too
	for _, rr := range []*Runner{r, r2} {
		for name, task := range map[string]*taskv1.Task{"another kind": taskWith(id, preflight, false), "the dry-run flag": taskWith(id, diag, true), "another spec": taskWith(id, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{JournalLines: 5}}}, false)} {
			res, _ := runSync(t, rr, task)
			if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != ReasonTaskIDReused || res.GetReplayed() || len(res.GetOutputs()) != 0 {
				t.Fatalf("%s under a used ID: %v", name, res)
			}
			if !strings.Contains(res.GetError().GetMessage(), id) || !strings.Contains(res.GetError().GetHint(), "new ID") {
				t.Fatalf("%s: the refusal does not say what to do: %v", name, res.GetError())
			}
			if _, ok := rr.Recorded(task); ok {
				t.Fatalf("%s: Recorded answers for a different task", name)
			}
		}
		// The same task still replays its own result: the refusal did not overwrite it.
		res, _ := runSync(t, rr, taskWith(id, diag, false))
		if !res.GetReplayed() || res.GetOutputs()["kind"] != "diagnostics" {
			t.Fatalf("replay of the original task: %v", res)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("handlers ran %d times, want 1", runs.Load())
	}
}

// TestReusedIDWhileRunningIsRefused: a different task under the ID of a running task is
// refused at once instead of being dropped as a duplicate.
func TestReusedIDWhileRunningIsRefused(t *testing.T) {
	started := make(chan struct{})
	r, _ := NewRunner(t.TempDir(), t.TempDir(), map[string]Handler{"diagnostics": func(ctx context.Context, _ *taskv1.Task, _ *host.Host, _ *Emitter) (map[string]string, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), diagTask("t-r", false), func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	<-started
	res, _ := runSync(t, r, diagTask("t-r", true))
	if res.GetError().GetReason() != ReasonTaskIDReused {
		t.Fatalf("a different task under a running task's ID: %v", res)
	}
	r.Cancel("t-r")
	<-done
}

// TestJournalEntryWithoutDigestRunsAgain: an entry journaled before digests were kept
// cannot say which task it was: it is not replayed, and the task runs again (tasks check
// before they act) and is journaled with its digest.
func TestJournalEntryWithoutDigestRunsAgain(t *testing.T) {
	dir := t.TempDir()
	var runs atomic.Int32
	r, _ := NewRunner(dir, t.TempDir(), map[string]Handler{"diagnostics": func(ctx context.Context, _ *taskv1.Task, _ *host.Host, _ *Emitter) (map[string]string, error) {
		runs.Add(1)
		return map[string]string{"fresh": "yes"}, nil
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	old, _ := proto.Marshal(&taskv1.TaskResult{TaskId: "t-old", State: taskv1.TaskState_TASK_STATE_SUCCEEDED, Outputs: map[string]string{"fresh": "no"}})
	if err := os.WriteFile(filepath.Join(dir, "tasks", "t-old.pb"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Recorded(diagTask("t-old", false)); ok {
		t.Fatal("an entry without a digest is reported as recorded")
	}
	res, _ := runSync(t, r, diagTask("t-old", false))
	if runs.Load() != 1 || res.GetReplayed() || res.GetOutputs()["fresh"] != "yes" {
		t.Fatalf("old entry: runs=%d %v", runs.Load(), res)
	}
	if res, _ := runSync(t, r, diagTask("t-old", false)); !res.GetReplayed() || runs.Load() != 1 {
		t.Fatalf("the rerun was not journaled: %v", res)
	}
}

// A result a controller would refuse whole (over its message limit) would be sent again from
// the journal on every reconnect: the agent fits it first, and a dropped artifact fails the
// task with a reason the user can act on.
func TestResultsFitWhatAControllerAccepts(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	handlers := map[string]Handler{"diagnostics": func(ctx context.Context, task *taskv1.Task, h *host.Host, e *Emitter) (map[string]string, error) {
		// A bundle over the limit, and a file whose diff alone is larger than a message.
		e.Attach(make([]byte, wirelimits.MaxMessageBytes))
		big := strings.Repeat("line of a very large generated file\n", (wirelimits.MaxMessageBytes/36)+1000)
		_, err := h.WriteFile("/etc/big.conf", []byte(big), 0o644)
		return nil, err
	}}
	r, _ := NewRunner(dir, root, handlers, slog.New(slog.NewTextHandler(io.Discard, nil)))
	res, events := runSync(t, r, diagTask("big-1", false))
	if n := proto.Size(res); n >= wirelimits.MaxMessageBytes/2 { // well under, with room for the envelope
		t.Fatalf("the result is %d bytes, a controller accepts at most %d in one message", n, wirelimits.MaxMessageBytes)
	}
	if res.GetState() != taskv1.TaskState_TASK_STATE_FAILED || res.GetError().GetReason() != "ARTIFACT_TOO_LARGE" || len(res.GetArtifact()) != 0 {
		t.Fatalf("want a failed task with ARTIFACT_TOO_LARGE and no artifact, got %v %v (%d artifact bytes)", res.GetState(), res.GetError(), len(res.GetArtifact()))
	}
	if len(res.GetChanges()) != 1 || len(res.GetChanges()[0].GetDetail()) > wirelimits.MaxChangeDetailBytes {
		t.Fatalf("the change should be kept with its detail cut: %d changes", len(res.GetChanges()))
	}
	said := false
	for _, ev := range events {
		said = said || strings.Contains(ev.GetLog().GetText(), "the result was cut")
	}
	if !said {
		t.Fatal("the task log does not say the result was cut")
	}
	// The journal holds the fitted result, so a replay is small too.
	r2, _ := NewRunner(dir, root, handlers, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if res2, _ := runSync(t, r2, diagTask("big-1", false)); !res2.GetReplayed() || proto.Size(res2) >= wirelimits.MaxMessageBytes/2 {
		t.Fatalf("replay: replayed=%v size=%d", res2.GetReplayed(), proto.Size(res2))
	}
}

// A cancel that reaches the agent before its task is kept: the task, when it arrives, is
// reported cancelled and never runs, and its result is journaled like any other.
func TestCancelBeforeAssignmentIsHonoured(t *testing.T) {
	var runs atomic.Int32
	handlers := map[string]Handler{"diagnostics": func(ctx context.Context, _ *taskv1.Task, _ *host.Host, _ *Emitter) (map[string]string, error) {
		runs.Add(1)
		return nil, nil
	}}
	dir := t.TempDir()
	r, _ := NewRunner(dir, t.TempDir(), handlers, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if r.Cancel("t-early") {
		t.Fatal("cancel of a task never started says it stopped one")
	}
	res, events := runSync(t, r, diagTask("t-early", false))
	if runs.Load() != 0 {
		t.Fatalf("the cancelled task ran %d times", runs.Load())
	}
	if res.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED || !strings.Contains(res.GetError().GetMessage(), "cancelled before it started") {
		t.Fatalf("result of a task cancelled before it came: %v", res)
	}
	if len(events) != 0 {
		t.Fatalf("a task that never ran sent events: %v", events)
	}
	// Assigned again (a reconnect), it replays the cancelled result and still does not run.
	again, _ := runSync(t, r, diagTask("t-early", false))
	if runs.Load() != 0 || again.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED || !again.GetReplayed() {
		t.Fatalf("re-assigned: runs=%d %v", runs.Load(), again)
	}
	// Other tasks run as before.
	if res, _ := runSync(t, r, diagTask("t-other", false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || runs.Load() != 1 {
		t.Fatalf("an uncancelled task: runs=%d %v", runs.Load(), res)
	}
}

// The early cancels are bounded: past MaxEarlyCancels the oldest is forgotten (its task
// would run if it came now), the newer ones are kept.
func TestEarlyCancelsAreBounded(t *testing.T) {
	var runs atomic.Int32
	handlers := map[string]Handler{"diagnostics": func(context.Context, *taskv1.Task, *host.Host, *Emitter) (map[string]string, error) {
		runs.Add(1)
		return nil, nil
	}}
	r, _ := NewRunner(t.TempDir(), t.TempDir(), handlers, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range MaxEarlyCancels + 1 {
		r.Cancel(fmt.Sprintf("t-%d", i))
	}
	r.Cancel("t-5") // again: not counted twice
	if res, _ := runSync(t, r, diagTask("t-0", false)); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || runs.Load() != 1 {
		t.Fatalf("the oldest cancel was kept past the bound: runs=%d %v", runs.Load(), res)
	}
	for _, id := range []string{"t-1", "t-5", fmt.Sprintf("t-%d", MaxEarlyCancels)} {
		if res, _ := runSync(t, r, diagTask(id, false)); res.GetState() != taskv1.TaskState_TASK_STATE_CANCELLED {
			t.Fatalf("%s: a kept cancel was not honoured: %v", id, res)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("cancelled tasks ran: runs=%d", runs.Load())
	}
	if len(r.early) > MaxEarlyCancels || len(r.earlyOrder) != len(r.early) {
		t.Fatalf("early cancels: %d kept, %d in order", len(r.early), len(r.earlyOrder))
	}
}

// session is what one agent session gives a task: the events and result it received.
type session struct {
	mu     sync.Mutex
	lines  []string
	result chan *taskv1.TaskResult
}

func newSession() *session { return &session{result: make(chan *taskv1.TaskResult, 1)} }

func (s *session) emit(ev *taskv1.TaskEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, ev.GetLog().GetText())
}

func (s *session) done(res *taskv1.TaskResult) { s.result <- res }

func (s *session) logged() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// A task assigned again on a new session (the old one's controller died) is not run again:
// the new session gets the lines logged so far, then the later lines and the result, and
// the old session nothing more. Assigned again after it ended, it is answered with its
// lines and the recorded result.
func TestATaskReportsToTheSessionThatAssignedItLast(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var runs atomic.Int32
	release := make(chan struct{})
	r, _ := NewRunner(t.TempDir(), t.TempDir(), map[string]Handler{"diagnostics": func(ctx context.Context, _ *taskv1.Task, _ *host.Host, e *Emitter) (map[string]string, error) {
		runs.Add(1)
		e.Logf("before")
		<-release
		e.Logf("after")
		return nil, nil
	}}, log)
	task := diagTask("t-1", false)
	first := newSession()
	r.Start(context.Background(), task, first.emit, first.done)
	waitLines := func(s *session, want string) {
		t.Helper()
		testwait.For(t, 10*time.Second, func() error {
			if got := s.logged(); !slices.Contains(got, want) {
				return fmt.Errorf("lines %q, want %q among them", got, want)
			}
			return nil
		})
	}
	waitLines(first, "before")

	second := newSession()
	r.Start(context.Background(), task, second.emit, second.done)
	close(release)
	select {
	case res := <-second.result:
		if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || res.GetReplayed() {
			t.Fatalf("result: %v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second session got no result")
	}
	if got := second.logged(); len(got) != 3 || got[1] != "before" || got[2] != "after" {
		t.Fatalf("second session's lines: %q", got)
	}
	if got := first.logged(); len(got) != 2 || len(first.result) != 0 {
		t.Fatalf("the first session got more after the second took over: %q, %d results", got, len(first.result))
	}

	third := newSession()
	r.Start(context.Background(), task, third.emit, third.done)
	res := <-third.result
	if !res.GetReplayed() || runs.Load() != 1 {
		t.Fatalf("after the end: replayed=%t runs=%d", res.GetReplayed(), runs.Load())
	}
	if got := third.logged(); strings.Join(got, "|") != strings.Join(second.logged(), "|") {
		t.Fatalf("third session's lines %q, want %q", got, second.logged())
	}
}

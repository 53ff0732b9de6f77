package runtime

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/containerdrepo"
	"github.com/deckhandhq/deckhand/internal/testkit/gpgkit"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The repository's key is pinned by its fingerprint: the right key is written once (a
// second run fetches nothing), a key that changed is refused and never written.
func TestPinKey(t *testing.T) {
	right, wrong := gpgkit.New(t, "Repo"), gpgkit.New(t, "Impostor")
	var served atomic.Value
	served.Store(right.Armored)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(served.Load().([]byte))
	}))
	defer srv.Close()

	root := t.TempDir()
	pin := func(fp string) (*taskv1.TaskResult, string) {
		r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"runtime": func(ctx context.Context, _ *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
			return nil, pinKey(ctx, h, e, srv.URL+"/gpg", fp)
		}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		var logs []string
		done := make(chan *taskv1.TaskResult, 1)
		r.Start(context.Background(), &taskv1.Task{Id: "pin", Node: "n1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: &taskv1.RuntimeSpec{}}}},
			func(ev *taskv1.TaskEvent) {
				if l := ev.GetLog(); l != nil {
					logs = append(logs, l.GetText())
				}
			}, func(res *taskv1.TaskResult) { done <- res })
		select {
		case res := <-done:
			return res, strings.Join(logs, "\n")
		case <-time.After(30 * time.Second):
			t.Fatal("the task did not end")
		}
		return nil, ""
	}
	keyFile := filepath.Join(root, containerdrepo.KeyFile)

	// The key changed under the repository: refused, nothing written.
	served.Store(wrong.Armored)
	res, _ := pin(right.Fingerprint)
	if res.GetError().GetReason() != "GPG_KEY_MISMATCH" || !strings.Contains(res.GetError().GetMessage(), wrong.Fingerprint) || !strings.Contains(res.GetError().GetMessage(), "not the pinned "+right.Fingerprint) {
		t.Fatalf("a key of another fingerprint: %v", res.GetError())
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Fatalf("the refused key was written: %v", err)
	}
	// Both keys in one file: refused too (dnf would trust the other).
	served.Store(append(append([]byte{}, right.Armored...), wrong.Armored...))
	if res, _ := pin(right.Fingerprint); res.GetError().GetReason() != "GPG_KEY_MISMATCH" {
		t.Fatalf("the pinned key with another: %v", res.GetError())
	}

	served.Store(right.Armored)
	res, logs := pin(right.Fingerprint)
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || !strings.Contains(logs, "pinned the containerd repository's key "+right.Fingerprint) {
		t.Fatalf("the pinned key: %v\n%s", res, logs)
	}
	if b, err := os.ReadFile(keyFile); err != nil || string(b) != string(right.Armored) {
		t.Fatalf("%s: %v", keyFile, err)
	}
	before := fetches.Load()
	if res, logs := pin(right.Fingerprint); res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || strings.Contains(logs, "pinned") || fetches.Load() != before {
		t.Fatalf("a second run: %v, log %q, %d fetches", res, logs, fetches.Load()-before)
	}
	// A pin that moves to another key: the file there is not it, and the key served is
	// refused; the file stays as it was.
	if res, _ := pin(wrong.Fingerprint); res.GetError().GetReason() != "GPG_KEY_MISMATCH" {
		t.Fatalf("a pin of another key: %v", res.GetError())
	}
	if b, _ := os.ReadFile(keyFile); string(b) != string(right.Armored) {
		t.Fatal("a refused fetch changed the pinned key file")
	}
}

package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A command run with the lock keeps it after the agent lets go, as long as the command
// (here, a process it left in the background) lives; the next Lock waits for it.
func TestLockOutlivesTheAgentWhileItsCommandRuns(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	ctx := context.Background()
	l, err := h.Lock(ctx, "/var/lib/deckhand/test.lock", nil)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(root, "done")
	out, err := l.RunOutput(ctx, "start a command that outlives its parent", "sh", "-c", "echo started; (sleep 2; : > "+marker+") &")
	if err != nil || strings.TrimSpace(string(out)) != "started" {
		t.Fatalf("run with the lock: %q %v", out, err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	waited := false
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := h.Lock(short, "/var/lib/deckhand/test.lock", func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("Lock while the command holds it: err %v, waiting called %v", err, waited)
	}
	l2, err := h.Lock(ctx, "/var/lib/deckhand/test.lock", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Unlock()
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("Lock returned before the command that held it finished: %v", err)
	}
}

func TestLockInADryRunCreatesNothing(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root, DryRun: true}
	l, err := h.Lock(context.Background(), "/var/lib/deckhand/test.lock", nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.RunOutput(context.Background(), "would run", "false"); err != nil || out != nil {
		t.Fatalf("dry-run RunOutput: %q %v", out, err)
	}
	l.Unlock()
	if _, err := os.Stat(filepath.Join(root, "var")); !os.IsNotExist(err) {
		t.Fatal("a dry-run Lock created the lock file")
	}
	if c := h.Changes(); len(c) != 1 || c[0].GetTarget() != "false" {
		t.Fatalf("dry-run changes: %v", c)
	}
}

func TestCommandErrorKeepsAllOfStderr(t *testing.T) {
	h := &Host{Root: t.TempDir()}
	long := strings.Repeat("x", 1000)
	_, err := h.Query(context.Background(), "sh", "-c", "echo first-line >&2; echo "+long+" >&2; exit 3")
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.Stderr, "first-line\n") {
		t.Fatalf("want a CommandError with the whole stderr, got %v", err)
	}
	if len(err.Error()) > 500 || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("the error message is not bounded or lost the exit status: %d chars", len(err.Error()))
	}
}

package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDryRunChangesNothingAndReportsTheSame(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "crictl.yaml"), []byte("timeout: 2\n"), 0o644)
	apply := func(h *Host) {
		if _, err := h.WriteFile("/etc/crictl.yaml", []byte("timeout: 10\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteFile("/etc/containerd/config.toml", []byte("version = 2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.Run(context.Background(), "restart containerd", "true"); err != nil {
			t.Fatal(err)
		}
	}
	dry := &Host{Root: root, DryRun: true}
	apply(dry)
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "crictl.yaml")); string(b) != "timeout: 2\n" {
		t.Fatalf("dry-run wrote: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "containerd")); !os.IsNotExist(err) {
		t.Fatal("dry-run created a directory")
	}
	wet := &Host{Root: root}
	apply(wet)
	if len(dry.Changes()) != 3 || len(wet.Changes()) != 3 {
		t.Fatalf("dry-run reported %d changes, the real run made %d", len(dry.Changes()), len(wet.Changes()))
	}
	for i := range dry.Changes() {
		if dry.Changes()[i].String() != wet.Changes()[i].String() {
			t.Fatalf("dry-run %v != real %v", dry.Changes()[i], wet.Changes()[i])
		}
	}
	if d := wet.Changes()[0].GetDetail(); !strings.Contains(d, "+timeout: 10") || !strings.Contains(d, "-timeout: 2") {
		t.Fatalf("diff detail: %q", d)
	}
	// A second run with the same content changes no file.
	again := &Host{Root: root}
	if changed, _ := again.WriteFile("/etc/crictl.yaml", []byte("timeout: 10\n"), 0o644); changed || len(again.Changes()) != 0 {
		t.Fatal("identical write reported a change")
	}
}

func TestPathsStayUnderRootAndCommandsAreArgv(t *testing.T) {
	root := t.TempDir()
	h := &Host{Root: root}
	if p := h.Path("../../etc/passwd"); !strings.HasPrefix(p, root) {
		t.Fatalf("path escaped the root: %s", p)
	}
	// An argument with shell syntax is passed as one argument, never interpreted.
	out, err := h.Query(context.Background(), "echo", "a; rm -rf /", "$(id)")
	if err != nil || string(out) != "a; rm -rf / $(id)\n" {
		t.Fatalf("echo: %q %v", out, err)
	}
	if _, err := h.Query(context.Background(), "no-such-binary-deckhand"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing binary: %v", err)
	}
}

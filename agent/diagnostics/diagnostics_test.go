package diagnostics_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/agent/diagnostics"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The bundle (viewers can save it) quotes the kubelet journal and configuration; a token
// or certificate key in them is masked.
func TestBundleMasksSecrets(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/kubelet"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/journalctl"), []byte("#!/bin/sh\necho 'kubelet[42]: bootstrap with --token abcdef.0123456789abcdef --certificate-key 9f2c4a61e0b7d8355a1e6c0f3b9d27a4c8e15f60b2d9a7c3e41f8b06d5a2c97e'\n"), 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/kubelet/config.yaml"), []byte("kind: KubeletConfiguration\nauthentication:\n  token: s3cr3t-bearer-value\n"), 0o644)
	r, err := tasks.NewRunner(t.TempDir(), root, map[string]tasks.Handler{"diagnostics": diagnostics.Run}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *taskv1.TaskResult, 1)
	r.Start(context.Background(), &taskv1.Task{Id: "diag", Node: "n1", Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}},
		func(*taskv1.TaskEvent) {}, func(res *taskv1.TaskResult) { done <- res })
	var res *taskv1.TaskResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("diagnostics did not finish")
	}
	zr, err := gzip.NewReader(bytes.NewReader(res.GetArtifact()))
	if err != nil {
		t.Fatalf("bundle: %v (%v)", err, res)
	}
	tr := tar.NewReader(zr)
	var all strings.Builder
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		all.WriteString(hdr.Name + ":\n" + string(b))
	}
	if !strings.Contains(all.String(), "kubelet[42]: bootstrap with --token abcdef.") {
		t.Fatalf("the journal is not in the bundle:\n%s", all.String())
	}
	for _, s := range []string{"0123456789abcdef", "9f2c4a61e0b7d8355a1e6c0f3b9d27a4c8e15f60b2d9a7c3e41f8b06d5a2c97e", "s3cr3t-bearer-value"} {
		if strings.Contains(all.String(), s) {
			t.Fatalf("the bundle holds %s:\n%s", s, all.String())
		}
	}
}

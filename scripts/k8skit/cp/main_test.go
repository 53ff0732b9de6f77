package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCopyReplacesWithTheSourcesMode(t *testing.T) {
	d := t.TempDir()
	src, dst := filepath.Join(d, "flannel"), filepath.Join(d, "bin", "flannel")
	if err := os.WriteFile(src, []byte("plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte("old and longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-f", src, dst}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst)
	st, _ := os.Stat(dst)
	if string(b) != "plugin" || st.Mode().Perm() != 0o755 {
		t.Errorf("dst = %q %v, want the source's content and mode", b, st.Mode())
	}
	// Into a directory: under the source's name.
	if err := run([]string{src, filepath.Dir(dst)}); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-f", filepath.Join(d, "missing"), dst}); err == nil {
		t.Error("copying a missing file succeeded")
	}
	if err := run([]string{"a"}); err == nil {
		t.Error("one argument accepted")
	}
	if left, _ := filepath.Glob(filepath.Join(d, "bin", ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
)

// A wrong SHA-256 for a file on the node says only that it does not match: the location can
// name any file (/etc/shadow), and its digest shown to every reader of the task would let
// them test guesses of its content.
func TestChecksumMismatchHidesTheLocalFilesDigest(t *testing.T) {
	root := t.TempDir()
	secret := []byte("root:$6$salt$hash:19000:0:99999:7:::\n")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/shadow"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(secret)
	actual := hex.EncodeToString(sum[:])
	want := strings.Repeat("0", 64)
	_, err := Fetch(context.Background(), &host.Host{Root: root}, "containerd_tarball", "/etc/shadow", want, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("fetch with a wrong digest: %v", err)
	}
	if strings.Contains(err.Error(), actual) {
		t.Fatalf("the error shows the file's actual digest: %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("the error does not show the expected digest: %v", err)
	}
}

// What a fetch reads is bounded: a bigger file or body, or something that is not a regular
// file (a device that never ends), is refused before it is read whole.
func TestFetchIsBounded(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &host.Host{Root: root}
	if _, err := Fetch(context.Background(), h, "manifest.location", "/big", "", 1024); err == nil || !strings.Contains(err.Error(), "at most 1024") {
		t.Errorf("a file above the bound: %v", err)
	}
	if _, err := Fetch(context.Background(), h, "manifest.location", "/big", "", 4096); err != nil {
		t.Errorf("a file within the bound: %v", err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), h, "manifest.location", "/dir", "", 4096); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(make([]byte, 2048)) }))
	defer srv.Close()
	if _, err := Fetch(context.Background(), h, "manifest.location", srv.URL+"/m.yaml", strings.Repeat("0", 64), 1024); err == nil || !strings.Contains(err.Error(), "larger than 1024") {
		t.Errorf("a body above the bound: %v", err)
	}
}

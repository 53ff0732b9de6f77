package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	_, err := Fetch(context.Background(), &host.Host{Root: root}, "containerd_tarball", "/etc/shadow", want)
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

// Package artifact fetches what a task installs or applies (release tarballs, manifests)
// from an http(s) URL or a path on the node, pinned by SHA-256.
package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
)

// Fetch reads an artifact of at most max bytes from an http(s) URL (which needs its
// SHA-256) or a regular file at an absolute path on the node and checks its digest. It changes nothing on the host, so it runs in a
// dry-run too.
func Fetch(ctx context.Context, h *host.Host, field, location, want string, max int64) ([]byte, error) {
	var data []byte
	var err error
	remote := strings.HasPrefix(location, "https://") || strings.HasPrefix(location, "http://")
	switch {
	case remote:
		if want == "" {
			return nil, tasks.Errorf("INVALID_ARGUMENT", "add the artifact's SHA-256 (from the release page) to the task", "sha256[%s] is required for a download", location)
		}
		data, err = host.DownloadMax(ctx, location, max)
	case strings.HasPrefix(location, "/"):
		data, err = readBounded(h.Path(location), location, max)
	default:
		return nil, tasks.Errorf("INVALID_ARGUMENT", "use an http(s) URL or an absolute path on the node", "%s %q is neither an http(s) URL nor an absolute path", field, location)
	}
	if err != nil {
		return nil, tasks.Errorf("FETCH_FAILED", "check the URL or path, and the node's network", "%s: %v", field, err)
	}
	if want != "" {
		sum := sha256.Sum256(data)
		// The actual digest is never shown: the location may name any file on the node
		// (/etc/shadow), and its digest would let a reader of the task test guesses of it.
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
			return nil, tasks.Errorf("CHECKSUM_MISMATCH", "check the SHA-256 against the release page; the file may be corrupt or tampered with", "sha256[%s]: the file's digest does not match the expected %s", location, want)
		}
	}
	return data, nil
}

// readBounded reads a regular file of at most max bytes, opened once: never a device, a FIFO
// that never ends or a proc file that says it is empty.
func readBounded(path, location string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", location)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s has more than %d bytes; at most %d are allowed", location, max, max)
	}
	return b, nil
}

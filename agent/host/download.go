package host

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxDownload bounds a downloaded artifact.
const MaxDownload = 512 << 20

// Download fetches an http(s) URL from the node (release artifacts, repository keys). It
// reads and changes nothing on the host, so it also runs in a dry-run.
func Download(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, MaxDownload))
}

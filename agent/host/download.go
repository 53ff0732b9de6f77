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
	return DownloadMax(ctx, url, MaxDownload)
}

// DownloadMax is Download of at most max bytes: a bigger body is an error, read no further.
func DownloadMax(ctx context.Context, url string, max int64) ([]byte, error) {
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, max)
	}
	return b, nil
}

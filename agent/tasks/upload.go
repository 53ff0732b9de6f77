package tasks

import (
	"context"
	"io"
)

// Uploader sends r to the controller replica at address for transfer id (see the agent
// API's Upload) and returns the SHA-256 (hex) and size of what it sent.
type Uploader func(ctx context.Context, address, id string, r io.Reader) (string, int64, error)

type uploaderKey struct{}

// WithUploader gives the tasks run under ctx the agent's uploader.
func WithUploader(ctx context.Context, u Uploader) context.Context {
	return context.WithValue(ctx, uploaderKey{}, u)
}

// UploaderFrom is the uploader ctx carries, or nil.
func UploaderFrom(ctx context.Context) Uploader {
	u, _ := ctx.Value(uploaderKey{}).(Uploader)
	return u
}

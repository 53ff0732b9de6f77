package transfers

import (
	"context"
	"errors"
	"testing"
)

// A transfer is claimed once, by its own node; at most MaxConcurrent wait at once; a chunk
// sent after the caller left fails instead of blocking.
func TestTransfers(t *testing.T) {
	r := New()
	ctx, cancel := context.WithCancel(context.Background())
	tr, err := r.Open(ctx, "cp-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Claim("x-nope", "cp-1"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := r.Claim(tr.ID, "cp-2"); !errors.Is(err, ErrNotYours) {
		t.Errorf("another node: %v", err)
	}
	if got, err := r.Claim(tr.ID, "cp-1"); err != nil || got != tr {
		t.Fatalf("its node: %v", err)
	}
	if _, err := r.Claim(tr.ID, "cp-1"); !errors.Is(err, ErrTaken) {
		t.Errorf("twice: %v", err)
	}
	for range MaxConcurrent - 1 {
		if _, err := r.Open(context.Background(), "cp-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Open(context.Background(), "cp-1"); !errors.Is(err, ErrBusy) {
		t.Errorf("one too many: %v", err)
	}
	r.Close(tr)
	if _, err := r.Open(context.Background(), "cp-1"); err != nil {
		t.Errorf("after one closed: %v", err)
	}
	for range cap(tr.Data) {
		if err := tr.Send(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := tr.Send(context.Background(), []byte("x")); err == nil {
		t.Error("a chunk nobody waits for was accepted")
	}
}

package backoff

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRetryWaitsThenSucceeds(t *testing.T) {
	var waits []time.Duration
	n := 0
	err := Retry(context.Background(), 10*time.Second, time.Second, func(_ int, w time.Duration, _ error) { waits = append(waits, w) }, func(context.Context) error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 || len(waits) != 2 || waits[1] != 2*waits[0] {
		t.Fatalf("err %v after %d attempts, waits %v", err, n, waits)
	}
}

func TestRetryStopsAtPermanentAndDeadline(t *testing.T) {
	wrong := errors.New("wrong token")
	n := 0
	err := Retry(context.Background(), time.Minute, time.Second, nil, func(context.Context) error {
		n++
		return Permanent(wrong)
	})
	if !errors.Is(err, wrong) || !IsPermanent(err) || err.Error() != "wrong token" || n != 1 {
		t.Fatalf("permanent: %v after %d attempts", err, n)
	}
	start := time.Now()
	err = Retry(context.Background(), 700*time.Millisecond, time.Second, nil, func(context.Context) error { return errors.New("down") })
	if err == nil || !strings.Contains(err.Error(), "gave up after 700ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
}

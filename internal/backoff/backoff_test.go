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

func TestRoundIsPermanentOnlyWhenEveryAddressIs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		permanent []bool
		want      bool
	}{
		{"a refusal then an address still starting", []bool{true, false}, false},
		{"unreachable then a refusal", []bool{false, true}, false},
		{"every address refuses", []bool{true, true}, true},
		{"every address unreachable", []bool{false, false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Round
			for i, p := range tc.permanent {
				r.Fail(string(rune('a'+i))+":1", errors.New("why"), p)
			}
			err := r.Err()
			if err == nil || IsPermanent(err) != tc.want || err.Error() != "a:1: why; b:1: why" {
				t.Fatalf("got %v (permanent %v), want permanent %v naming both", err, IsPermanent(err), tc.want)
			}
		})
	}
	var r Round
	if r.Err() != nil {
		t.Fatal("an empty round failed")
	}
}

// Package backoff retries a start-up step that waits for another process (a controller
// joining a cluster that is still starting) with growing waits, up to a deadline.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Waits between attempts: the first, doubled after each attempt up to the longest.
const (
	FirstWait = 500 * time.Millisecond
	MaxWait   = 10 * time.Second
)

// Permanent marks an error that waiting cannot heal (a wrong token, a wrong CA pin):
// Retry returns it at once (still marked; its message is err's).
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Retry calls attempt until it succeeds, returns a Permanent error, ctx ends or timeout
// has passed (the last attempt starts at the deadline at the latest). Each attempt gets a
// context that ends after perAttempt.
// Before each wait, waiting is called with the attempt number, the wait and the error (to
// log one line). Out of time, it returns the last error and how long it tried.
func Retry(ctx context.Context, timeout, perAttempt time.Duration, waiting func(attempt int, wait time.Duration, err error), attempt func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	wait := FirstWait
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, perAttempt)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w (gave up after %v)", err, timeout)
		}
		wait = min(wait, left)
		if waiting != nil {
			waiting(n, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, MaxWait)
	}
}

// Round is one attempt against several addresses (each --join address in turn). It fails
// permanently only when every address answered with an error that waiting cannot heal: a
// stale or foreign first address must not end a join that a later address would serve, and
// a cluster still starting at one address must not be given up for a refusal at another.
type Round struct {
	errs      []string
	permanent int
}

// Fail records why addr failed this round; permanent says waiting cannot change its answer.
func (r *Round) Fail(addr string, err error, permanent bool) {
	r.errs = append(r.errs, addr+": "+err.Error())
	if permanent {
		r.permanent++
	}
}

// Err is the round's error, every address's reason in one line: Permanent when every
// address failed permanently, nil when none failed.
func (r *Round) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	err := errors.New(strings.Join(r.errs, "; "))
	if r.permanent == len(r.errs) {
		return Permanent(err)
	}
	return err
}

// Sleep waits d, or until ctx ends; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package testwait

import (
	"errors"
	"testing"
	"time"
)

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	failed string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f)
}

func TestForPollsUntilTheCondition(t *testing.T) {
	n := 0
	For(t, 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond was asked %d times, want 3", n)
	}
	f := &fatalTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		For(f, 30*time.Millisecond, func() error { return errors.New("never") })
	}()
	if f.failed == "" {
		t.Fatal("For did not fail after its deadline")
	}
}

package lab_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// errorf is t.Errorf for the real-cluster tests, whose failing check may sit amid thousands
// of lines of their output: the checks that failed are said again, together, as the test
// ends (a CI log keeps a failing test's first and last lines). A t.Fatal is the last line
// before the recap anyway; the recap's lines do not repeat the checks' file:line.
func errorf(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	t.Error(msg)
	recapMu.Lock()
	defer recapMu.Unlock()
	r := recaps[t]
	if r == nil {
		r = &recap{}
		recaps[t] = r
		t.Cleanup(func() {
			recapMu.Lock()
			defer recapMu.Unlock()
			delete(recaps, t)
			t.Logf("the checks that failed (%d), said again:\n%s", r.n, strings.Join(r.first, "\n"))
		})
	}
	r.n++
	if len(r.first) < maxRecap {
		if len(msg) > maxRecapLine {
			msg = msg[:maxRecapLine] + "…"
		}
		r.first = append(r.first, "- "+msg)
	}
}

const (
	maxRecap     = 20  // failed checks said again
	maxRecapLine = 600 // bytes of each
)

type recap struct {
	n     int
	first []string
}

var (
	recapMu sync.Mutex
	recaps  = map[testing.TB]*recap{}
)

package main

import (
	"strings"
	"testing"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

func step(name, lane string, deps ...string) *apiv1.Step {
	return &apiv1.Step{Name: name, Lane: lane, DependsOn: deps}
}

func action(s *apiv1.Step) *apiv1.Step { s.Action = "record-node"; return s }

func TestIdealSchedule(t *testing.T) {
	const T = 100 * time.Millisecond
	// A small apply: node-1's init lane, then two workers whose tokens wait for node-1's
	// record; the routes steps (no lane) after every record.
	apply := func() []*apiv1.Step {
		s := []*apiv1.Step{step("node-1/prep", "node-1"), step("node-1/init", "node-1", "node-1/prep"), action(step("node-1/record", "node-1", "node-1/init"))}
		for _, w := range []string{"node-2", "node-3"} {
			s = append(s, step(w+"/prep", w), step(w+"/token", w, w+"/prep", "node-1/record"), step(w+"/join", w, w+"/token"),
				action(step(w+"/record", w, w+"/join")))
		}
		for _, n := range []string{"node-1", "node-2", "node-3"} {
			s = append(s, step(n+"/routes", "", "node-1/record", "node-2/record", "node-3/record"))
		}
		return s
	}
	for _, c := range []struct {
		name        string
		steps       []*apiv1.Step
		concurrency int
		want        time.Duration
		longest     int
		err         string
	}{
		{"a chain of tasks", []*apiv1.Step{step("a/1", "a"), step("a/2", "a", "a/1"), step("a/3", "a", "a/2")}, 0, 3 * T, 3, ""},
		{"lanes in parallel", []*apiv1.Step{step("a/1", "a"), step("a/2", "a", "a/1"), step("b/1", "b"), step("b/2", "b", "b/1")}, 0, 2 * T, 2, ""},
		{"one lane at a time", []*apiv1.Step{step("a/1", "a"), step("a/2", "a", "a/1"), step("b/1", "b"), step("b/2", "b", "b/1")}, 1, 4 * T, 2, ""},
		{"an action costs nothing", []*apiv1.Step{step("a/1", "a"), action(step("a/r", "a", "a/1")), step("a/2", "a", "a/r")}, 0, 2 * T, 2, ""},
		{"steps without a lane are not admitted", []*apiv1.Step{step("a/1", "a"), step("a/2", "a", "a/1"), step("x", "")}, 1, 2 * T, 2, ""},
		// prep and init (2 T), then the workers' token and join (2 T), then routes (1 T).
		{"an apply, every lane at once", apply(), 0, 5 * T, 5, ""},
		// node-1 holds one of two places until its record (2 T): node-2 runs beside it,
		// node-3 from 2 T (prep, token, join: 5 T), then routes.
		{"an apply, two lanes at once", apply(), 2, 6 * T, 5, ""},
		{"an apply, one lane at a time", apply(), 1, 9 * T, 5, ""},
		{"a skipped step costs nothing", []*apiv1.Step{step("a/1", "a"), {Name: "a/s", Lane: "a", DependsOn: []string{"a/1"}, State: apiv1.StepState_STEP_STATE_SKIPPED}, step("a/2", "a", "a/s")}, 0, 2 * T, 2, ""},
		{"an unknown dependency", []*apiv1.Step{step("a/1", "a", "a/0")}, 0, 0, 0, "a/1 depends on a/0"},
		{"a cycle", []*apiv1.Step{step("a/1", "a", "a/2"), step("a/2", "a", "a/1")}, 0, 0, 0, "can never start"},
	} {
		got, longest, err := idealSchedule(c.steps, c.concurrency, T)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || longest != c.longest {
			t.Errorf("%s: %v, longest %d, %v; want %v, longest %d", c.name, got, longest, err, c.want, c.longest)
		}
	}
}

package workflows

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// A create sent again under its client-chosen ID (its answer was lost with a controller)
// returns the workflow the first one made, whatever it did since; another request under
// that ID is refused.
func TestCreateWithAClientChosenIDIsIdempotent(t *testing.T) {
	f := newEngineFixture(t, "n1")
	ctx := context.Background()
	wf, err := f.svc.CreateWithID(ctx, "wf-deploy-1", initSpec("n1"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if wf.GetId() != "wf-deploy-1" {
		t.Fatalf("created %s, want wf-deploy-1", wf.GetId())
	}
	if err := f.e.reconcile(ctx, wf.GetId()); err != nil {
		t.Fatal(err)
	}
	if s := f.step(t, wf.GetId(), "n1/preflight"); s.GetState() != apiv1.StepState_STEP_STATE_RUNNING {
		t.Fatalf("preflight not started: %v", s)
	}

	again, err := f.svc.CreateWithID(ctx, "wf-deploy-1", initSpec("n1"), "alice")
	if err != nil {
		t.Fatalf("the same create again: %v, want the recorded workflow", err)
	}
	if again.GetId() != wf.GetId() || !again.GetCreated().AsTime().Equal(wf.GetCreated().AsTime()) {
		t.Fatalf("the same create again made %s (created %v), want %s", again.GetId(), again.GetCreated().AsTime(), wf.GetId())
	}
	if s := f.step(t, wf.GetId(), "n1/preflight"); s.GetState() != apiv1.StepState_STEP_STATE_RUNNING {
		t.Fatalf("the repeated create reset the running step: %v", s)
	}
	if all, err := f.svc.List(ctx, apiv1.WorkflowState_WORKFLOW_STATE_UNSPECIFIED); err != nil || len(all) != 1 {
		t.Fatalf("%d workflows (%v), want 1", len(all), err)
	}

	other := initSpec("n1")
	other.GetInit().GetCluster().KubernetesVersion = "v1.33.12"
	for _, tc := range []struct {
		name string
		spec *apiv1.WorkflowSpec
		by   string
	}{
		{"another spec", other, "alice"},
		{"another caller", initSpec("n1"), "bob"},
	} {
		if _, err := f.svc.CreateWithID(ctx, "wf-deploy-1", tc.spec, tc.by); !errors.Is(err, ErrExists) {
			t.Errorf("%s under a taken ID: %v, want ErrExists", tc.name, err)
		}
	}
	for _, id := range []string{"deploy-1", "wf-", "wf-a.b", "wf-A", "wf-a-", "wf-" + string(make([]byte, 41))} {
		if _, err := f.svc.CreateWithID(ctx, id, initSpec("n1"), "alice"); !errors.Is(err, ErrInvalid) {
			t.Errorf("ID %q: %v, want ErrInvalid", id, err)
		}
	}
}

// Two creates under one ID at once (a retry while the first is still being written): the
// one whose header lands first wins, and the other neither overwrites nor deletes its
// steps, and answers with it.
func TestConcurrentCreatesUnderOneIDKeepTheWinnersSteps(t *testing.T) {
	st := teststore.New(t)
	ctx := context.Background()
	reg := nodes.New(st, nil)
	if err := reg.Enroll(ctx, "n1", "machine-n1", "serial-n1"); err != nil {
		t.Fatal(err)
	}
	winner := New(st, reg, tasks.New(st, reg, nil), nil)
	hs := &hookStore{Store: st}
	loser := New(hs, nodes.New(hs, nil), tasks.New(hs, reg, nil), nil)
	var once sync.Once
	var won *apiv1.Workflow
	hs.before = func(int) error {
		once.Do(func() {
			// Before the loser's first write: the winner creates the workflow and the
			// engine starts its first step.
			var err error
			if won, err = winner.CreateWithID(ctx, "wf-race", initSpec("n1"), "alice"); err != nil {
				t.Errorf("winner: %v", err)
				return
			}
			e := NewEngine(winner, slog.New(slog.NewTextHandler(io.Discard, nil)))
			e.fence, e.cache = store.Absent("/test/no-such-key"), map[string]*loaded{}
			if err := e.reconcile(ctx, "wf-race"); err != nil {
				t.Errorf("reconcile: %v", err)
			}
		})
		return nil
	}
	got, err := loser.CreateWithID(ctx, "wf-race", initSpec("n1"), "alice")
	if err != nil {
		t.Fatalf("loser: %v, want the winner's workflow", err)
	}
	if won == nil || got.GetId() != "wf-race" || !got.GetCreated().AsTime().Equal(won.GetCreated().AsTime()) {
		t.Fatalf("loser answered %v, want the winner's workflow", got)
	}
	after, err := winner.Get(ctx, "wf-race")
	if err != nil {
		t.Fatal(err)
	}
	if len(after.GetSteps()) != len(won.GetSteps()) {
		t.Fatalf("%d steps after the race, the winner wrote %d", len(after.GetSteps()), len(won.GetSteps()))
	}
	var running int
	for _, s := range after.GetSteps() {
		if s.GetState() == apiv1.StepState_STEP_STATE_RUNNING {
			running++
		}
	}
	if running == 0 {
		t.Fatalf("the winner's running step was overwritten by the loser's: %v", after.GetSteps())
	}
}

package tasks

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// An agent sends a task's events again on a new session when the controller of the old
// one died: what was stored already is stored once, what was not is stored now, and two
// different lines logged at the same instant are both kept.
func TestEventsSentAgainAreStoredOnce(t *testing.T) {
	ctx := context.Background()
	st := teststore.New(t)
	svc := New(st, nodes.New(st, nil), nil)
	at := time.Unix(1700000000, 0)
	line := func(text string, d time.Duration) *taskv1.TaskEvent {
		return &taskv1.TaskEvent{TaskId: "t-1", Time: timestamppb.New(at.Add(d)), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{Stream: "stdout", Text: text}}}
	}
	if err := svc.AppendEvents(ctx, []*taskv1.TaskEvent{line("one", 0), line("two", time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	// The replay: both again, one new, one in the same batch twice.
	if err := svc.AppendEvents(ctx, []*taskv1.TaskEvent{line("one", 0), line("two", time.Millisecond), line("three", 2*time.Millisecond), line("three", 2*time.Millisecond), line("three too", 2*time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := svc.Events(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.GetLog().GetText())
	}
	if len(got) != 4 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("stored lines %q, want one, two, three and three too, each once", got)
	}
}

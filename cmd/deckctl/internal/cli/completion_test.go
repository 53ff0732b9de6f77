package cli_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// The shell completes node names, workflow IDs and task IDs from the controller, for every
// command whose first argument is one of them.
func TestShellCompletionOfNames(t *testing.T) {
	s := newListServer(t)
	for _, name := range []string{"node-1", "node-2", "web-1"} {
		s.put(t, nodes.Prefix+name, &apiv1.Node{Name: name, State: apiv1.NodeState_NODE_STATE_READY, Enrolled: timestamppb.Now()})
	}
	s.put(t, tasks.Prefix+"diag-1", bigTask("diag-1", 0))
	s.put(t, tasks.Prefix+"ping-1", bigTask("ping-1", 0))
	// More tasks than one completion offers: a typed prefix still finds the one asked for.
	for i := range 250 {
		s.put(t, tasks.Prefix+fmt.Sprintf("bulk-%03d", i), bigTask(fmt.Sprintf("bulk-%03d", i), 0))
	}
	complete := func(args ...string) []string {
		t.Helper()
		out, err := s.deckctl(append([]string{"__complete"}, args...)...)
		if err != nil {
			t.Fatalf("deckctl __complete %v: %v", args, err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, ":") && l != "" {
				got = append(got, l)
			}
		}
		return got
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"join", "node-"}, "[node-1 node-2]"},
		{[]string{"reset", ""}, "[node-1 node-2 web-1]"},
		{[]string{"node", "describe", "w"}, "[web-1]"},
		{[]string{"task", "run", "node-1"}, "[node-1]"},
		{[]string{"task", "logs", "d"}, "[diag-1]"},
		{[]string{"task", "cancel", "p"}, "[ping-1]"},
		{[]string{"task", "get", "bulk-24"}, "[bulk-249 bulk-248 bulk-247 bulk-246 bulk-245 bulk-244 bulk-243 bulk-242 bulk-241 bulk-240]"},
		{[]string{"join", "node-1", ""}, "[]"}, // only the first argument is a name
	} {
		if got := complete(c.args...); strings.Join(got, " ") != strings.Trim(c.want, "[]") {
			t.Errorf("deckctl __complete %v = %v, want %s", c.args, got, c.want)
		}
	}
	// Every command that takes a node, workflow or task first completes it.
	var missing []string
	root := cli.NewRoot(&bytes.Buffer{}, &bytes.Buffer{})
	for _, c := range root.Commands() {
		for _, sub := range append(c.Commands(), c) {
			f := strings.Fields(sub.Use)
			if len(f) >= 2 && (f[1] == "NODE" || f[1] == "ID") && sub.ValidArgsFunction == nil {
				missing = append(missing, sub.CommandPath())
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("commands without completion of their first argument: %v", missing)
	}
}

package agent

import (
	"testing"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/internal/taskkinds"
)

// The agent runs exactly the task kinds internal/taskkinds declares: a declared kind without
// a handler would be accepted by the controller and fail on every node.
func TestEveryTaskKindHasAHandler(t *testing.T) {
	h := handlers(&facts.Collector{})
	for _, k := range taskkinds.All() {
		if h[k.Name] == nil {
			t.Errorf("task kind %s has no handler on the agent", k.Name)
		}
	}
	for name := range h {
		if _, ok := taskkinds.Get(name); !ok {
			t.Errorf("the agent handles %q, which taskkinds does not declare", name)
		}
	}
}

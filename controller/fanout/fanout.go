// Package fanout runs one task on many nodes: it picks the nodes (Select), decides which
// start and which are skipped (Plan), keeps the run's account as tasks start and end
// (Tracker), all pure, and Run drives them against the task store with a concurrency limit,
// streaming the progress. Every node's task is an ordinary task under the run's ID
// ("<run>.<node>"), so a run resumes from the store after a broken stream or a failover.
package fanout

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller/tasks"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Limits of a run.
const (
	// MaxNodes bounds a selection (its first message lists every node).
	MaxNodes = 20000
	// DefaultConcurrency and MaxConcurrency bound the nodes whose tasks run at once.
	DefaultConcurrency = 100
	MaxConcurrency     = 1000
	// DefaultTimeout and MaxTimeout bound a run's deadline.
	DefaultTimeout = 10 * time.Minute
	MaxTimeout     = 24 * time.Hour
	// MaxIDLength keeps "<run>.<node>" within a task ID's 128 characters.
	MaxIDLength = 64
)

// Reasons a node gets no task.
const (
	ReasonNotReady     = "NODE_NOT_READY"
	ReasonLocked       = "NODE_LOCKED"
	ReasonDeadline     = "DEADLINE_EXCEEDED"
	ReasonCreateFailed = "CREATE_FAILED"
)

// ErrInvalid: the request is malformed (a *FieldError names the field).
var ErrInvalid = errors.New("invalid run")

// FieldError is a malformed request: the field and what to do.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{field, fmt.Sprintf(format, args...)}
}

// attribute is one key a selector may match on, declared once.
type attribute struct {
	key    string
	values string // for the error message
	of     func(*apiv1.Node) string
}

var attributes = []attribute{
	{"role", "control-plane, worker or none", func(n *apiv1.Node) string {
		if n.GetClusterRole() == "" {
			return "none"
		}
		return n.GetClusterRole()
	}},
	{"os", "the os_id of the node's facts, for example debian or rocky", func(n *apiv1.Node) string { return n.GetFacts().GetOsId() }},
	{"arch", "amd64, arm64, ...", func(n *apiv1.Node) string { return n.GetFacts().GetArch() }},
	{"state", "ready, not-ready, lost or enrolled", func(n *apiv1.Node) string { return StateName(n.GetState()) }},
}

// Keys lists the attributes a selector matches on.
func Keys() []string {
	out := make([]string, len(attributes))
	for i, a := range attributes {
		out[i] = a.key
	}
	return out
}

// StateName is a node state as a selector and a message say it: "not-ready".
func StateName(s apiv1.NodeState) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.String(), "NODE_STATE_")), "_", "-")
}

// Select returns the nodes sel picks from all (every enrolled node), in name order.
func Select(all []*apiv1.Node, sel *apiv1.NodeSelector) ([]*apiv1.Node, error) {
	given := 0
	for _, set := range []bool{sel.GetAll(), len(sel.GetNames()) > 0, len(sel.GetMatch()) > 0} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, fieldErr("nodes", "give exactly one of all, names or match (deckctl: --nodes all, --nodes a,b,c or --nodes role=worker)")
	}
	byName := make(map[string]*apiv1.Node, len(all))
	for _, n := range all {
		byName[n.GetName()] = n
	}
	var out []*apiv1.Node
	switch {
	case sel.GetAll():
		out = slices.Clone(all)
	case len(sel.GetNames()) > 0:
		if len(sel.GetNames()) > MaxNodes {
			return nil, fieldErr("nodes.names", "%d names, at most %d", len(sel.GetNames()), MaxNodes)
		}
		seen := map[string]bool{}
		var unknown []string
		for _, name := range sel.GetNames() {
			n, ok := byName[name]
			switch {
			case seen[name]:
				continue
			case !ok:
				unknown = append(unknown, name)
				continue
			}
			seen[name] = true
			out = append(out, n)
		}
		if len(unknown) > 0 {
			if len(unknown) > 5 {
				unknown = append(unknown[:5], fmt.Sprintf("and %d more", len(unknown)-5))
			}
			return nil, fieldErr("nodes.names", "not enrolled: %s (deckctl node list shows the enrolled nodes)", strings.Join(unknown, ", "))
		}
	default:
		keys := make([]string, 0, len(sel.GetMatch()))
		for k := range sel.GetMatch() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var match []func(*apiv1.Node) bool
		for _, k := range keys {
			i := slices.IndexFunc(attributes, func(a attribute) bool { return a.key == k })
			if i < 0 {
				return nil, fieldErr("nodes.match", "key %q: use %s", k, strings.Join(Keys(), ", "))
			}
			a, v := attributes[i], sel.GetMatch()[k]
			if v == "" {
				return nil, fieldErr("nodes.match", "%s has no value: give %s=VALUE (%s)", k, k, a.values)
			}
			match = append(match, func(n *apiv1.Node) bool { return a.of(n) == v })
		}
		for _, n := range all {
			if !slices.ContainsFunc(match, func(m func(*apiv1.Node) bool) bool { return !m(n) }) {
				out = append(out, n)
			}
		}
	}
	if len(out) == 0 {
		return nil, fieldErr("nodes", "the selection matches no enrolled node (deckctl node list shows them with their role and state)")
	}
	if len(out) > MaxNodes {
		return nil, fieldErr("nodes", "%d nodes selected, at most %d in one run: select fewer (--nodes role=worker) or run in parts", len(out), MaxNodes)
	}
	slices.SortFunc(out, func(a, b *apiv1.Node) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// Skip is a node given no task, with why.
type Skip struct {
	Node, Reason, Message string
}

// Plan splits the selected nodes into those that get a task and those skipped: a node
// that is not ready (its agent is not connected) would hold the run until the deadline, and
// one a workflow holds refuses direct tasks. A node that has its task already (a resumed
// run) is followed to its end whatever its state now.
func Plan(nodes []*apiv1.Node, now time.Time, started map[string]bool) (run []string, skipped []Skip) {
	for _, n := range nodes {
		switch {
		case started[n.GetName()]:
			run = append(run, n.GetName())
		case n.GetState() != apiv1.NodeState_NODE_STATE_READY:
			msg := fmt.Sprintf("node is %s", StateName(n.GetState()))
			if t := n.GetStateChanged(); t != nil {
				msg += fmt.Sprintf(" since %s", now.Sub(t.AsTime()).Round(time.Second))
			}
			skipped = append(skipped, Skip{n.GetName(), ReasonNotReady, msg + ": its agent is not connected; start it (systemctl start deckhand-agent) and run again with the same --id"})
		case n.GetLockedBy() != "":
			skipped = append(skipped, Skip{n.GetName(), ReasonLocked, fmt.Sprintf("node is held by workflow %s: wait for it (deckctl workflow describe %s)", n.GetLockedBy(), n.GetLockedBy())})
		default:
			run = append(run, n.GetName())
		}
	}
	return run, skipped
}

// TaskID is the ID of node's task in run id.
func TaskID(run, node string) string { return run + "." + node }

// Tracker is a run's account: which nodes wait, run and ended, and how long the ended took.
// It is a value the driver owns; nothing in it reads a clock or the store.
type Tracker struct {
	id        string
	total     int
	queue     []string        // not started, in start order
	waiting   map[string]bool // in queue
	running   map[string]bool // started (or found started), not ended
	ended     map[string]bool // ended or skipped
	succeeded int
	failed    int
	took      []time.Duration // of the ended tasks, creation to result
}

// NewTracker starts the account of run id over the nodes to run and those skipped.
func NewTracker(id string, run []string, skipped []Skip) *Tracker {
	t := &Tracker{id: id, total: len(run) + len(skipped), queue: slices.Clone(run),
		waiting: make(map[string]bool, len(run)), running: map[string]bool{}, ended: make(map[string]bool, len(run))}
	for _, n := range run {
		t.waiting[n] = true
	}
	for _, s := range skipped {
		t.ended[s.Node] = true
		t.failed++
	}
	return t
}

// Next takes the nodes to start now so that at most concurrency run at once.
func (t *Tracker) Next(concurrency int) []string {
	var out []string
	for len(t.queue) > 0 && len(t.running) < concurrency {
		n := t.queue[0]
		t.queue = t.queue[1:]
		if !t.waiting[n] {
			continue // found started or ended meanwhile
		}
		delete(t.waiting, n)
		t.running[n] = true
		out = append(out, n)
	}
	return out
}

// Observe takes a task record of this run (from the store or a create's answer) and
// reports whether it ended a node not counted yet. A started record of a node not started
// by this call (a resumed run) counts as running.
func (t *Tracker) Observe(rec *apiv1.TaskRecord) bool {
	node := rec.GetTask().GetNode()
	if rec.GetTask().GetId() != TaskID(t.id, node) || t.ended[node] || (!t.waiting[node] && !t.running[node]) {
		return false
	}
	if !tasks.Terminal(rec.GetState()) {
		if t.waiting[node] {
			delete(t.waiting, node)
			t.running[node] = true
		}
		return false
	}
	delete(t.waiting, node)
	delete(t.running, node)
	t.ended[node] = true
	if rec.GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.succeeded++
	} else {
		t.failed++
	}
	if c, u := rec.GetCreated(), rec.GetUpdated(); c != nil && u != nil && !u.AsTime().Before(c.AsTime()) {
		t.took = append(t.took, u.AsTime().Sub(c.AsTime()))
	}
	return true
}

// Skipped ends a node without a task (its create failed, or the deadline came first).
func (t *Tracker) Skipped(node string) bool {
	if t.ended[node] || (!t.waiting[node] && !t.running[node]) {
		return false
	}
	delete(t.waiting, node)
	delete(t.running, node)
	t.ended[node] = true
	t.failed++
	return true
}

// Waiting returns the nodes not started, in order.
func (t *Tracker) Waiting() []string {
	var out []string
	for _, n := range t.queue {
		if t.waiting[n] {
			out = append(out, n)
		}
	}
	return out
}

// Running returns the nodes started and not ended, sorted.
func (t *Tracker) Running() []string {
	out := make([]string, 0, len(t.running))
	for n := range t.running {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Done reports whether every node ended or was skipped.
func (t *Tracker) Done() bool { return len(t.ended) == t.total }

// Summary is the account as the API shows it, elapsed after the call began.
func (t *Tracker) Summary(elapsed time.Duration) *apiv1.RunTasksSummary {
	s := &apiv1.RunTasksSummary{Id: t.id, Total: int32(t.total), Pending: int32(len(t.waiting)), Running: int32(len(t.running)),
		Succeeded: int32(t.succeeded), Failed: int32(t.failed), Elapsed: durationpb.New(elapsed), Done: t.Done()}
	if len(t.took) > 0 {
		took := slices.Clone(t.took)
		slices.Sort(took)
		s.P50, s.P99 = durationpb.New(Percentile(took, 50)), durationpb.New(Percentile(took, 99))
	}
	return s
}

// Percentile is the p-th percentile of sorted (nearest rank); 0 when empty.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n*p/100), 1-based
	return sorted[max(i, 1)-1]
}

// Limits resolves a request's concurrency and timeout, naming a bad field.
func Limits(concurrency int32, timeout time.Duration) (int, time.Duration, error) {
	switch {
	case concurrency < 0 || concurrency > MaxConcurrency:
		return 0, 0, fieldErr("concurrency", "%d: give 1 to %d, or 0 for %d", concurrency, MaxConcurrency, DefaultConcurrency)
	case timeout < 0 || timeout > MaxTimeout:
		return 0, 0, fieldErr("timeout", "%s: give at most %s, or 0 for %s", timeout, MaxTimeout, DefaultTimeout)
	}
	c, d := int(concurrency), timeout
	if c == 0 {
		c = DefaultConcurrency
	}
	if d == 0 {
		d = DefaultTimeout
	}
	return c, d, nil
}

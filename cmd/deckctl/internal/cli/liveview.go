package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/client"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// liveView shows a workflow while it runs: on a terminal, a table redrawn in place (one
// line per node and step, or per node when there are many steps); otherwise one plain line
// per step transition, so logs and CI output stay readable.
type liveView struct {
	w        io.Writer
	id       string
	tty      bool
	wf       *apiv1.Workflow
	progress map[string]*taskv1.Progress // task ID → latest progress
	drawn    int
	lastDraw time.Time
	seen     map[string]string
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

func newLiveView(w io.Writer, id string) *liveView {
	return &liveView{w: w, id: id, tty: isTerminal(w), progress: map[string]*taskv1.Progress{}, seen: map[string]string{}}
}

func (v *liveView) update(wf *apiv1.Workflow) {
	first := v.wf == nil
	v.wf = wf
	if v.tty {
		v.draw(client.Done(wf))
		return
	}
	if first {
		fmt.Fprintf(v.w, "workflow %s: %s, %d steps on %d node(s)\n", wf.GetId(), wfKind(wf), len(wf.GetSteps()), len(wf.GetNodes()))
	}
	if p := upgradeProgress(wf, time.Now()); p != "" {
		// Once per node finished, batch started or pause (not for each new estimate).
		if key, _, _ := strings.Cut(p, "; about"); v.seen[""] != key+fmt.Sprint(wf.GetPaused()) {
			v.seen[""] = key + fmt.Sprint(wf.GetPaused())
			fmt.Fprintf(v.w, "%s %s\n", now(), p)
		}
	}
	for _, s := range wf.GetSteps() {
		key := fmt.Sprintf("%s/%d", s.GetState(), s.GetAttempts())
		if s.GetState() == apiv1.StepState_STEP_STATE_PENDING && s.GetAttempts() == 0 {
			if e := s.GetError(); e != nil && v.seen[s.GetName()] != "wait:"+e.GetMessage() {
				v.seen[s.GetName()] = "wait:" + e.GetMessage()
				fmt.Fprintf(v.w, "%s %-24s waiting: %s\n", now(), s.GetName(), e.GetMessage())
			}
			continue
		}
		if v.seen[s.GetName()] == key {
			continue
		}
		v.seen[s.GetName()] = key
		fmt.Fprintf(v.w, "%s %-24s %s\n", now(), s.GetName(), v.detail(s, true))
	}
}

func now() string { return time.Now().Format("15:04:05") }

func (v *liveView) event(ev *taskv1.TaskEvent) {
	if p := ev.GetProgress(); p != nil {
		v.progress[ev.GetTaskId()] = p
		if v.tty {
			v.draw(false)
		}
	}
}

func (v *liveView) note(msg string) {
	if v.tty {
		v.draw(true)
		v.drawn = 0
	}
	fmt.Fprintf(v.w, "%s %s\n", now(), msg)
}

func (v *liveView) close() {
	if v.tty && v.wf != nil {
		v.draw(true)
	}
}

// detail is a step's state with what matters about it now.
func (v *liveView) detail(s *apiv1.Step, withSummary bool) string {
	st := stepState(s.GetState())
	var parts []string
	switch s.GetState() {
	case apiv1.StepState_STEP_STATE_RUNNING:
		if s.GetAttempts() > 1 {
			st = fmt.Sprintf("running (try %d of %d)", s.GetAttempts(), s.GetMaxAttempts())
		}
		if p := v.progress[s.GetTaskId()]; p != nil {
			if p.GetTotal() > 0 {
				parts = append(parts, fmt.Sprintf("%s %s/%s", shortItem(p.GetItem()), human(p.GetDone(), p.GetUnit()), human(p.GetTotal(), p.GetUnit())))
			} else {
				parts = append(parts, fmt.Sprintf("%s %s", shortItem(p.GetItem()), human(p.GetDone(), p.GetUnit())))
			}
		} else if withSummary {
			parts = append(parts, s.GetSummary())
		}
	case apiv1.StepState_STEP_STATE_SUCCEEDED:
		parts = append(parts, stepDuration(s))
	case apiv1.StepState_STEP_STATE_FAILED:
		parts = append(parts, s.GetError().GetMessage())
	case apiv1.StepState_STEP_STATE_PENDING:
		if e := s.GetError(); e != nil {
			if s.GetAttempts() > 0 {
				st = fmt.Sprintf("retrying (%d of %d tries failed)", s.GetAttempts(), s.GetMaxAttempts())
			} else {
				st = "waiting"
			}
			parts = append(parts, e.GetMessage())
		}
	}
	if s.GetNode() != "" && s.GetNode() != s.GetLane() {
		parts = append(parts, "on "+s.GetNode())
	}
	out := st
	for _, p := range parts {
		if p != "" {
			out += "  " + p
		}
	}
	return out
}

func shortItem(item string) string {
	if i := strings.LastIndex(item, "/"); i >= 0 {
		return item[i+1:]
	}
	return item
}

// draw redraws the table in place (at most 10 times a second unless forced).
func (v *liveView) draw(force bool) {
	if v.wf == nil || (!force && time.Since(v.lastDraw) < 100*time.Millisecond) {
		return
	}
	v.lastDraw = time.Now()
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", v.drawn)
	}
	lines := []string{fmt.Sprintf("workflow %s: %s — %s", v.wf.GetId(), wfKind(v.wf), wfState(v.wf.GetState()))}
	if p := upgradeProgress(v.wf, time.Now()); p != "" {
		lines = append(lines, "  "+p)
	}
	steps := v.wf.GetSteps()
	if len(steps) <= 40 {
		for _, s := range steps {
			node, what, _ := strings.Cut(s.GetName(), "/")
			lines = append(lines, fmt.Sprintf("  %-14s %-13s %s", node, what, v.detail(s, false)))
		}
	} else {
		// Many nodes: one line per node with its current step.
		var lanes []string
		cur := map[string]*apiv1.Step{}
		done := map[string]int{}
		total := map[string]int{}
		for _, s := range steps {
			l := s.GetLane()
			if _, ok := total[l]; !ok {
				lanes = append(lanes, l)
			}
			total[l]++
			if s.GetState() == apiv1.StepState_STEP_STATE_SUCCEEDED || s.GetState() == apiv1.StepState_STEP_STATE_SKIPPED {
				done[l]++
			}
			if c := cur[l]; c == nil || (c.GetState() == apiv1.StepState_STEP_STATE_SUCCEEDED && s.GetState() != apiv1.StepState_STEP_STATE_PENDING) ||
				s.GetState() == apiv1.StepState_STEP_STATE_RUNNING || s.GetState() == apiv1.StepState_STEP_STATE_FAILED {
				cur[l] = s
			}
		}
		for _, l := range lanes {
			s := cur[l]
			_, what, _ := strings.Cut(s.GetName(), "/")
			lines = append(lines, fmt.Sprintf("  %-14s %2d/%-2d %-13s %s", l, done[l], total[l], what, v.detail(s, false)))
		}
	}
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	v.drawn = len(lines)
	_, _ = io.WriteString(v.w, b.String())
}

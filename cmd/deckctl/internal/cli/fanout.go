package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/client"
	"github.com/deckhandhq/deckhand/internal/bounded"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// parseSelector reads --nodes: "all", "KEY=VALUE[,KEY=VALUE]" or "a,b,c".
func parseSelector(s string) (*apiv1.NodeSelector, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, fmt.Errorf("--nodes is empty: give all, KEY=VALUE (role, os, arch, state) or node names separated by commas")
	case s == "all":
		return &apiv1.NodeSelector{All: true}, nil
	case strings.Contains(s, "="):
		m := map[string]string{}
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || k == "" || v == "" {
				return nil, fmt.Errorf("--nodes %q: %q is not KEY=VALUE; give role=worker,os=debian or node names, not both", s, kv)
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("--nodes %q: %s is given twice", s, k)
			}
			m[k] = v
		}
		return &apiv1.NodeSelector{Match: m}, nil
	}
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return &apiv1.NodeSelector{Names: names}, nil
}

// runView shows a run: on a terminal one progress line redrawn in place, otherwise a line
// at most every 2 s while it changes; each failed node as it fails.
type runView struct {
	w, out   io.Writer
	kind     string
	tty      bool
	lastLine string
	lastDraw time.Time
	started  time.Time
	ended    []*apiv1.TaskRecord
	skipped  []*apiv1.SkippedNode
	total    int
}

func (v *runView) progress(s *apiv1.RunTasksSummary) {
	line := fmt.Sprintf("%s: %d/%d ended (%d succeeded, %d failed), %d running, %d waiting, %s",
		v.kind, s.GetSucceeded()+s.GetFailed(), s.GetTotal(), s.GetSucceeded(), s.GetFailed(), s.GetRunning(), s.GetPending(), time.Since(v.started).Round(10*time.Millisecond))
	if s.GetP50() != nil {
		line += fmt.Sprintf(", p50 %s p99 %s", roundDur(s.GetP50()), roundDur(s.GetP99()))
	}
	switch {
	case v.tty:
		fmt.Fprintf(v.w, "\r\033[K%s", line)
		if s.GetDone() {
			fmt.Fprintln(v.w)
		}
	case s.GetDone() || time.Since(v.lastDraw) >= 2*time.Second:
		fmt.Fprintln(v.w, line)
		v.lastDraw = time.Now()
	}
	v.lastLine = line
}

func roundDur(d *durationpb.Duration) time.Duration {
	x := d.AsDuration()
	switch {
	case x >= time.Second:
		return x.Round(10 * time.Millisecond)
	case x >= time.Millisecond:
		return x.Round(100 * time.Microsecond)
	}
	return x
}

func (v *runView) fail(node, detail string) {
	if v.tty {
		fmt.Fprint(v.w, "\r\033[K")
	}
	fmt.Fprintf(v.w, "%s: %s\n", node, detail)
	if v.tty && v.lastLine != "" {
		fmt.Fprint(v.w, v.lastLine)
	}
}

// runMany runs kind on the nodes sel picks (RunTasks) and prints every node's result.
func (o *options) runMany(sel *apiv1.NodeSelector, kind string, spec *taskv1.TaskSpec, f *taskFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dctx, dcancel := context.WithTimeout(ctx, o.timeout)
	cc, err := o.dial(dctx)
	dcancel()
	if err != nil {
		return err
	}
	defer cc.Close()
	req := &apiv1.RunTasksRequest{Nodes: sel, Spec: spec, DryRun: f.dryRun, Concurrency: int32(f.concurrency), Id: f.id}
	if f.runTimeout > 0 {
		req.Timeout = durationpb.New(f.runTimeout)
	}
	v := &runView{w: o.errOut, out: o.out, kind: kind, tty: isTerminal(o.errOut), started: time.Now()}
	var selected []string
	last, err := cc.RunTasks(ctx, req, clientRunHandlers(v, &selected))
	if err != nil {
		return describe(err)
	}
	if o.output != "table" {
		return o.printStructuredRun(last, selected, v)
	}
	printRun(o.out, v)
	if n := last.GetFailed(); n > 0 {
		return fmt.Errorf("%s failed on %d of %d nodes (run %s): %s", kind, n, last.GetTotal(), last.GetId(), failedNames(v))
	}
	return nil
}

func (o *options) printStructuredRun(last *apiv1.RunTasksSummary, selected []string, v *runView) error {
	all := &apiv1.RunTasksResponse{Summary: last, Nodes: selected, Ended: v.ended, Skipped: v.skipped}
	if _, err := o.printStructured(all); err != nil {
		return err
	}
	if n := last.GetFailed(); n > 0 {
		return fmt.Errorf("%s failed on %d of %d nodes (run %s)", v.kind, n, last.GetTotal(), last.GetId())
	}
	return nil
}

// failedNames lists the failed nodes for the error line, the first 10.
func failedNames(v *runView) string {
	var out []string
	for _, s := range v.skipped {
		out = append(out, s.GetNode())
	}
	for _, r := range v.ended {
		if r.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
			out = append(out, r.GetTask().GetNode())
		}
	}
	slices.Sort(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return strings.Join(out, ", ")
}

// printRun prints one line per node, the succeeded first, then the failed with their
// errors, so the failures end the output.
func printRun(w io.Writer, v *runView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRESULT\tTIME\tDETAIL")
	recs := slices.Clone(v.ended)
	slices.SortFunc(recs, func(a, b *apiv1.TaskRecord) int {
		as, bs := a.GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED, b.GetState() == taskv1.TaskState_TASK_STATE_SUCCEEDED
		if as != bs {
			if as {
				return -1
			}
			return 1
		}
		return strings.Compare(a.GetTask().GetNode(), b.GetTask().GetNode())
	})
	for _, r := range recs {
		took := r.GetUpdated().AsTime().Sub(r.GetCreated().AsTime()).Round(100 * time.Microsecond)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.GetTask().GetNode(), taskState(r.GetState()), took, runDetail(r))
	}
	sk := slices.Clone(v.skipped)
	slices.SortFunc(sk, func(a, b *apiv1.SkippedNode) int { return strings.Compare(a.GetNode(), b.GetNode()) })
	for _, s := range sk {
		fmt.Fprintf(tw, "%s\t%s\t-\t%s: %s\n", s.GetNode(), "skipped", s.GetReason(), s.GetMessage())
	}
	tw.Flush()
}

// runDetail is a record's outputs (succeeded) or error (failed), on one line.
func runDetail(r *apiv1.TaskRecord) string {
	if e := r.GetResult().GetError(); e != nil && r.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		return bounded.String(e.GetReason()+": "+e.GetMessage(), 300)
	}
	out := r.GetResult().GetOutputs()
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(out)) {
		kv = append(kv, k+"="+out[k])
	}
	return bounded.String(strings.Join(kv, " "), 200)
}

func clientRunHandlers(v *runView, selected *[]string) client.RunHandlers {
	return client.RunHandlers{
		Selected: func(nodes []string) { *selected = nodes },
		Progress: v.progress,
		Ended: func(r *apiv1.TaskRecord) {
			v.ended = append(v.ended, r)
			if r.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
				v.fail(r.GetTask().GetNode(), taskState(r.GetState())+": "+runDetail(r))
			}
		},
		Skipped: func(s *apiv1.SkippedNode) {
			v.skipped = append(v.skipped, s)
			v.fail(s.GetNode(), "skipped: "+s.GetReason()+": "+s.GetMessage())
		},
		Reconnect: func(error) { v.fail("deckctl", "reconnecting to a controller; the run resumes there") },
	}
}

package sessions

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/ratelimit"
	"github.com/deckhandhq/deckhand/internal/secret"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	"github.com/deckhandhq/deckhand/internal/wirelimits"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// What one agent can make a controller hold and store. An agent's certificate is a
// credential a host's root can steal, so every message of a session is bounded by size and
// every write it causes by rate, per node on each replica. What exceeds a bound is cut or
// dropped, counted in deckhand_agent_messages_dropped_total{reason} and logged with the
// node's name (at most one line per node per DropLogInterval).
const (
	// MaxMessageBytes is the largest gRPC message any caller may send a controller.
	MaxMessageBytes = wirelimits.MaxMessageBytes
	// MaxFactsBytes bounds a node's facts (encoded); bigger facts are dropped and the last
	// good facts kept.
	MaxFactsBytes = 64 << 10
	// MaxFactsString bounds each string in the facts (hostname, kernel, versions, ...).
	MaxFactsString = 1 << 10
	// MaxFactsItems bounds each list and map in the facts (IP addresses, kube versions).
	MaxFactsItems = 256
	// MaxHelloString bounds the strings of a hello (agent version, each known task ID).
	MaxHelloString = 256
	// MaxHelloTaskIDs bounds the task IDs a hello lists.
	MaxHelloTaskIDs = 4096
	// MaxLogLineBytes bounds one line of a task's log; a longer line is cut (and says so).
	MaxLogLineBytes = 4 << 10
	// MaxProgressItemBytes bounds the item and unit of a progress event.
	MaxProgressItemBytes = 512
	// MaxTaskLogBytes bounds the log stored for one task (per replica the agent talks to):
	// the first MaxTaskLogBytes are kept, then one line says that later lines were dropped.
	MaxTaskLogBytes = 4 << 20
	// MaxOutputsBytes, MaxChangeDetailBytes, MaxChangesBytes, MaxArtifactBytes and
	// MaxErrorTextBytes bound a task's result (internal/wirelimits, which the agent honours
	// too).
	MaxOutputsBytes      = wirelimits.MaxOutputsBytes
	MaxChangeDetailBytes = wirelimits.MaxChangeDetailBytes
	MaxChangesBytes      = wirelimits.MaxChangesBytes
	MaxArtifactBytes     = wirelimits.MaxArtifactBytes
	MaxErrorTextBytes    = wirelimits.MaxErrorTextBytes

	// FactsWritesPerMinute and FactsWriteBurst rate-limit the facts writes of one node:
	// facts arriving faster are coalesced, only the newest is written when the bucket allows.
	FactsWritesPerMinute = 12
	FactsWriteBurst      = 5
	// EventBytesPerSecond and EventBurstBytes rate-limit the task events of one node, in
	// bytes, each event costing at least MinEventCost; events past the budget are dropped.
	EventBytesPerSecond = 256 << 10
	EventBurstBytes     = 1 << 20
	MinEventCost        = 256
	// RenewalsPerMinute and RenewalBurst rate-limit a node's certificate renewals (each
	// signs a certificate and writes the node record); an agent renews once in two thirds
	// of its certificate's lifetime, so only a stolen certificate calls faster. Calls past
	// the budget are refused with RESOURCE_EXHAUSTED.
	RenewalsPerMinute = 1
	RenewalBurst      = 3
	// DropLogInterval is how often at most a node's drops are logged (with counts).
	DropLogInterval = 10 * time.Second
)

// Reasons a message (or part of it) is dropped, the reason label of
// deckhand_agent_messages_dropped_total.
const (
	DropFactsTooLarge      = "facts_too_large"
	DropFactsCoalesced     = "facts_coalesced"
	DropLogLineTruncated   = "log_line_truncated"
	DropProgressTruncated  = "progress_truncated"
	DropEventRate          = "event_rate"
	DropEventUnknownTask   = "event_unknown_task"
	DropTaskLogFull        = "task_log_full"
	DropOutputsTooLarge    = "outputs_too_large"
	DropChangesTruncated   = "changes_truncated"
	DropArtifactTooLarge   = "artifact_too_large"
	DropErrorTextTruncated = "error_text_truncated"
	// DropRenewalRate: a certificate renewal refused for exceeding the node's renewal budget.
	DropRenewalRate = "renewal_rate"
	// DropRenewalEarly: a certificate renewal refused before half the certificate's lifetime.
	DropRenewalEarly = "renewal_early"
)

// Limiter applies the limits above to the messages of every node's sessions on this
// replica. Its budgets belong to the node, not the session: reconnecting refills nothing.
type Limiter struct {
	log     *slog.Logger
	now     func() time.Time
	dropped *prometheus.CounterVec

	mu    sync.Mutex
	nodes map[string]*nodeBudget
}

type nodeBudget struct {
	facts   ratelimit.Bucket
	events  ratelimit.Bucket
	renew   ratelimit.Bucket
	taskLog map[string]int // bytes stored per task assigned to the node; -1: full, marked
	// Drops not logged yet, by reason, and when the node's last drop line was written.
	unlogged map[string]int
	logged   time.Time
}

// NewLimiter returns a limiter that logs to log. now may be nil (time.Now).
func NewLimiter(log *slog.Logger, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		log: log, now: now, nodes: map[string]*nodeBudget{},
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deckhand_agent_messages_dropped_total",
			Help: "Agent messages (or parts of them) dropped or cut for exceeding a size or rate limit, by reason.",
		}, []string{"reason"}),
	}
}

// Collector is the limiter's metric, for the controller's registry.
func (l *Limiter) Collector() prometheus.Collector { return l.dropped }

func (l *Limiter) budget(node string) *nodeBudget {
	b := l.nodes[node]
	if b == nil {
		now := l.now()
		b = &nodeBudget{
			facts:    ratelimit.NewBucket(FactsWritesPerMinute/60.0, FactsWriteBurst, now),
			events:   ratelimit.NewBucket(EventBytesPerSecond, EventBurstBytes, now),
			renew:    ratelimit.NewBucket(RenewalsPerMinute/60.0, RenewalBurst, now),
			taskLog:  map[string]int{},
			unlogged: map[string]int{},
		}
		l.nodes[node] = b
	}
	return b
}

// Renewal takes one certificate renewal from node's budget. When the budget is spent it
// counts a drop and returns how long until the next renewal is allowed.
func (l *Limiter) Renewal(node string) (time.Duration, bool) {
	l.mu.Lock()
	b := l.budget(node)
	now := l.now()
	wait := b.renew.Wait(1, now)
	if wait == 0 {
		b.renew.Take(1, now)
	}
	l.mu.Unlock()
	if wait > 0 {
		l.Drop(node, DropRenewalRate, 1)
		return wait, false
	}
	return 0, true
}

// Nodes lists the nodes this limiter holds budgets for.
func (l *Limiter) Nodes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.nodes))
	for n := range l.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Forget drops a node's budgets (the node was deleted).
func (l *Limiter) Forget(node string) {
	l.mu.Lock()
	delete(l.nodes, node)
	l.mu.Unlock()
}

// Drop counts a drop for node and logs it, at most once per DropLogInterval per node.
func (l *Limiter) Drop(node, reason string, n int) {
	l.dropped.WithLabelValues(reason).Add(float64(n))
	l.mu.Lock()
	b := l.budget(node)
	b.unlogged[reason] += n
	if l.now().Sub(b.logged) < DropLogInterval {
		l.mu.Unlock()
		return
	}
	l.reportLocked(node, b)
}

// Report logs the drops of node not logged yet (its session ended).
func (l *Limiter) Report(node string) {
	l.mu.Lock()
	b := l.nodes[node]
	if b == nil || len(b.unlogged) == 0 {
		l.mu.Unlock()
		return
	}
	l.reportLocked(node, b)
}

// reportLocked logs b's unlogged drops; it is called with l.mu held and releases it.
func (l *Limiter) reportLocked(node string, b *nodeBudget) {
	b.logged = l.now()
	counts := b.unlogged
	b.unlogged = map[string]int{}
	l.mu.Unlock()
	reasons := make([]string, 0, len(counts))
	for r, c := range counts {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, c))
	}
	sort.Strings(reasons)
	l.log.Warn("dropped messages from an agent over its limits; a host sending this much may be compromised", "node", node, "dropped", reasons, "next_report_in", DropLogInterval)
}

// CheckFacts reports the first way facts exceed their limits, naming the field.
func CheckFacts(f *agentv1.Facts) error {
	if n := proto.Size(f); n > MaxFactsBytes {
		return fmt.Errorf("facts: %d bytes, more than the %d a node's facts may take", n, MaxFactsBytes)
	}
	if n := len(f.GetCertificates()); n > MaxFactsCertificates {
		return fmt.Errorf("facts.certificates: %d items, at most %d", n, MaxFactsCertificates)
	}
	if n := len(f.GetEtcdSnapshots()); n > MaxFactsEtcdSnapshots {
		return fmt.Errorf("facts.etcd_snapshots: %d items, at most %d", n, MaxFactsEtcdSnapshots)
	}
	for i, s := range f.GetEtcdSnapshots() {
		if !snapshotNameRE.MatchString(s.GetName()) {
			return fmt.Errorf("facts.etcd_snapshots[%d].name: %q is not a snapshot name", i, s.GetName())
		}
		if !sha256RE.MatchString(s.GetSha256()) {
			return fmt.Errorf("facts.etcd_snapshots[%d].sha256: not 64 hex digits", i)
		}
	}
	for i, c := range f.GetCertificates() {
		// Names become metric labels and table cells.
		if !certNameRE.MatchString(c.GetName()) {
			return fmt.Errorf("facts.certificates[%d].name: %q is not a certificate name (a-z, 0-9, '.', '-', at most 64)", i, bounded.String(c.GetName(), 80))
		}
		switch c.GetRenewedBy() {
		case "", "kubeadm", "kubelet":
		default:
			return fmt.Errorf("facts.certificates[%d].renewed_by: %q is not kubeadm, kubelet or empty", i, bounded.String(c.GetRenewedBy(), 80))
		}
	}
	return checkStrings(f.ProtoReflect(), "facts", MaxFactsString, MaxFactsItems)
}

// certNameRE is what a certificate's name in facts looks like ("apiserver", "admin.conf").
var certNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,63}$`)

// MaxFactsEtcdSnapshots bounds the etcd snapshots a node's facts list.
const MaxFactsEtcdSnapshots = 64

var (
	snapshotNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sha256RE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// MaxFactsCertificates bounds the certificates in a node's facts (an agent reports at most
// the 16 kubeadm and the kubelet keep; each is a metric series).
const MaxFactsCertificates = 32

// CheckHello reports the first way a hello exceeds its limits, naming the field.
func CheckHello(h *agentv1.Hello) error {
	if len(h.GetAgentVersion()) > MaxHelloString {
		return fmt.Errorf("hello.agent_version: %d bytes, at most %d", len(h.GetAgentVersion()), MaxHelloString)
	}
	if n := len(h.GetKnownTaskIds()); n > MaxHelloTaskIDs {
		return fmt.Errorf("hello.known_task_ids: %d IDs, at most %d", n, MaxHelloTaskIDs)
	}
	for _, id := range h.GetKnownTaskIds() {
		if len(id) > MaxHelloString {
			return fmt.Errorf("hello.known_task_ids: an ID of %d bytes, at most %d", len(id), MaxHelloString)
		}
	}
	if err := features.Check(h.GetFeatures()); err != nil {
		return fmt.Errorf("hello.features: %w", err)
	}
	if f := h.GetFacts(); f != nil {
		if err := CheckFacts(f); err != nil {
			return fmt.Errorf("hello.%w", err)
		}
	}
	return nil
}

// checkStrings walks m: every string at most maxString bytes, every list and map at most
// maxItems entries.
func checkStrings(m protoreflect.Message, path string, maxString, maxItems int) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			list := v.List()
			if list.Len() > maxItems {
				err = fmt.Errorf("%s: %d items, at most %d", p, list.Len(), maxItems)
				return false
			}
			for i := range list.Len() {
				if err = checkValue(fd, list.Get(i), p, maxString, maxItems); err != nil {
					return false
				}
			}
		case fd.IsMap():
			mp := v.Map()
			if mp.Len() > maxItems {
				err = fmt.Errorf("%s: %d entries, at most %d", p, mp.Len(), maxItems)
				return false
			}
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if len(k.String()) > maxString {
					err = fmt.Errorf("%s: a key of %d bytes, at most %d", p, len(k.String()), maxString)
					return false
				}
				err = checkValue(fd.MapValue(), mv, p+"["+bounded.String(k.String(), 64)+"]", maxString, maxItems)
				return err == nil
			})
		default:
			err = checkValue(fd, v, p, maxString, maxItems)
		}
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, maxString, maxItems int) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if n := len(v.String()); n > maxString {
			return fmt.Errorf("%s: %d bytes, at most %d", path, n, maxString)
		}
	case protoreflect.BytesKind:
		if n := len(v.Bytes()); n > maxString {
			return fmt.Errorf("%s: %d bytes, at most %d", path, n, maxString)
		}
	case protoreflect.MessageKind:
		return checkStrings(v.Message(), path, maxString, maxItems)
	}
	return nil
}

// Facts reports whether facts from node are within limits, counting a drop when not.
func (l *Limiter) Facts(node string, f *agentv1.Facts) error {
	if err := CheckFacts(f); err != nil {
		l.Drop(node, DropFactsTooLarge, 1)
		return err
	}
	return nil
}

// WaitFactsWrite waits until node may write its facts, and takes that write.
func (l *Limiter) WaitFactsWrite(ctx context.Context, node string) error {
	for {
		l.mu.Lock()
		b := l.budget(node)
		now := l.now()
		wait := b.facts.Wait(1, now)
		if wait == 0 {
			b.facts.Take(1, now)
		}
		l.mu.Unlock()
		if wait == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Assigned records that task id was sent to node: only such tasks' events are kept.
func (l *Limiter) Assigned(node, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.budget(node)
	if _, ok := b.taskLog[id]; !ok {
		b.taskLog[id] = 0
	}
}

// Event bounds one task event from node. It returns the events to store: none (dropped),
// the event (cut to its limits), or, when the task's log just filled up, one line that
// says later lines are dropped.
func (l *Limiter) Event(node string, ev *taskv1.TaskEvent) []*taskv1.TaskEvent {
	var cut string
	switch e := ev.GetEvent().(type) {
	case *taskv1.TaskEvent_Log:
		var long bool
		e.Log.Text, long = maskLine(e.Log.GetText(), MaxLogLineBytes)
		if long || len(e.Log.GetStream()) > 16 {
			e.Log.Stream = bounded.String(e.Log.GetStream(), 16)
			cut = DropLogLineTruncated
		}
	case *taskv1.TaskEvent_Progress:
		e.Progress.Item = secret.Mask(bounded.String(e.Progress.GetItem(), 2*MaxProgressItemBytes))
		if len(e.Progress.GetItem()) > MaxProgressItemBytes || len(e.Progress.GetUnit()) > 32 {
			e.Progress.Item = bounded.String(e.Progress.GetItem(), MaxProgressItemBytes)
			e.Progress.Unit = bounded.String(e.Progress.GetUnit(), 32)
			cut = DropProgressTruncated
		}
	}
	if cut != "" {
		l.Drop(node, cut, 1)
	}
	size := proto.Size(ev)
	l.mu.Lock()
	b := l.budget(node)
	used, assigned := b.taskLog[ev.GetTaskId()]
	var reason string
	var out []*taskv1.TaskEvent
	switch {
	case !assigned:
		reason = DropEventUnknownTask
	case used < 0:
		reason = DropTaskLogFull
	case used+size > MaxTaskLogBytes:
		reason = DropTaskLogFull
		b.taskLog[ev.GetTaskId()] = -1
		out = []*taskv1.TaskEvent{{TaskId: ev.GetTaskId(), Time: timestamppb.New(l.now()), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{
			Stream: "agent", Text: fmt.Sprintf("[deckhand controller] this task's log reached %d bytes, the most a task keeps; later lines are dropped", MaxTaskLogBytes)}}}}
	case !b.events.Take(max(float64(size), MinEventCost), l.now()):
		reason = DropEventRate
	default:
		b.taskLog[ev.GetTaskId()] = used + size
		out = []*taskv1.TaskEvent{ev}
	}
	l.mu.Unlock()
	if reason != "" {
		l.Drop(node, reason, 1)
	}
	return out
}

// maskLine masks the secrets in a log line as a controller receives it (an agent older
// than the masking of kubeadm's output, or a compromised one, sends them unmasked) and
// cuts it to max bytes, reporting whether it was cut. Masking comes first, so a cut never
// leaves part of a secret; only the first 2*max bytes are masked (the rest is cut anyway),
// so a huge line costs no more than a long one. The cut's marker counts the line's bytes.
func maskLine(s string, max int) (string, bool) {
	head := s
	if len(head) > 2*max {
		head = head[:2*max]
	}
	head = secret.Mask(head)
	if len(head) <= max && len(s) <= 2*max {
		return head, false
	}
	marker := fmt.Sprintf("… (%d bytes)", len(s)) // as bounded.String writes it
	cut := min(len(head), max-len(marker))
	for cut > 0 && cut < len(head) && !utf8.RuneStart(head[cut]) {
		cut--
	}
	return strings.ToValidUTF8(head[:cut], "") + marker, true
}

// Result bounds a task's result from node and forgets the task's log budget. It returns
// the result to store and log lines to store before it (what was cut and why). The
// result's error, changes and public outputs are masked first, like log lines.
func (l *Limiter) Result(node string, res *taskv1.TaskResult) (*taskv1.TaskResult, []*taskv1.TaskEvent) {
	tasksecrets.MaskResult(res, &secret.Masker{})
	l.mu.Lock()
	delete(l.budget(node).taskLog, res.GetTaskId())
	l.mu.Unlock()
	var notes []*taskv1.TaskEvent
	note := func(reason, format string, args ...any) {
		l.Drop(node, reason, 1)
		notes = append(notes, &taskv1.TaskEvent{TaskId: res.GetTaskId(), Time: timestamppb.New(l.now()), Event: &taskv1.TaskEvent_Log{Log: &taskv1.LogLine{
			Stream: "agent", Text: "[deckhand controller] " + fmt.Sprintf(format, args...)}}})
	}
	f := wirelimits.FitResult(res)
	if f.ArtifactBytes > 0 {
		note(DropArtifactTooLarge, "the task's artifact of %d bytes was dropped: a controller keeps at most %d", f.ArtifactBytes, MaxArtifactBytes)
	}
	if f.Changes {
		l.Drop(node, DropChangesTruncated, 1)
	}
	if f.ErrorText {
		l.Drop(node, DropErrorTextTruncated, 1)
	}
	if f.OutputsBytes > 0 {
		note(DropOutputsTooLarge, "the task's outputs of %d bytes were dropped and the task failed: a controller keeps at most %d", f.OutputsBytes, MaxOutputsBytes)
	}
	return res, notes
}

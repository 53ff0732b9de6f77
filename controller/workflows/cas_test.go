package workflows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/testkit/testetcd"
	"github.com/deckhandhq/deckhand/internal/testkit/teststore"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/etcdstore"
)

// etcdMaxTxnOps is etcd's default --max-txn-ops: no write may carry more.
const etcdMaxTxnOps = 128

// hookStore runs before(n) ahead of the n-th transaction (from 1); an error from it fails
// that transaction without applying it (a controller that died there). It records the
// largest transaction seen.
type hookStore struct {
	store.Store
	mu     sync.Mutex
	txns   int
	maxOps int
	// maxBytes: the most bytes one transaction put
	maxBytes int
	before   func(n int) error
}

func (h *hookStore) Txn(ctx context.Context, txn store.Txn) (int64, error) {
	h.mu.Lock()
	h.txns++
	n, before := h.txns, h.before
	h.maxOps = max(h.maxOps, len(txn.Then), len(txn.If))
	size := 0
	for _, op := range txn.Then {
		size += len(op.Key) + len(op.Value)
	}
	h.maxBytes = max(h.maxBytes, size)
	h.mu.Unlock()
	if before != nil {
		if err := before(n); err != nil {
			return 0, err
		}
	}
	return h.Store.Txn(ctx, txn)
}

// backends runs f on each store backend: the raft store, and etcd when it is installed.
func backends(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Run("raft", func(t *testing.T) { f(t, teststore.New(t)) })
	t.Run("etcd", func(t *testing.T) {
		c := testetcd.Start(t, testetcd.Options{})
		cfg := etcdstore.DefaultConfig()
		cfg.Endpoints, cfg.TLS, cfg.ID, cfg.Address = c.Endpoints(), c.ClientTLS(), "replica-0", "127.0.0.1:7400"
		cfg.Logger = teststore.Logger()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := etcdstore.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		f(t, st)
	})
}

type casFixture struct {
	st  store.Store // the store underneath: what a concurrent writer uses
	hs  *hookStore
	svc *Service
}

func newCASFixture(st store.Store) *casFixture {
	hs := &hookStore{Store: st}
	reg := nodes.New(hs, nil)
	return &casFixture{st: st, hs: hs, svc: New(hs, reg, tasks.New(hs, reg, nil), nil)}
}

// seed stores a workflow on node n1 with n steps: step 0 running, step 1 succeeded, step 2
// failed, the others pending. A running workflow holds n1.
func (f *casFixture) seed(t *testing.T, id string, state storagev1.WorkflowRecordState, n int) *storagev1.WorkflowRecord {
	return f.seedSized(t, id, state, n, 0)
}

// seedSized is seed with steps of about pad bytes more (a routes step of a big cluster
// records its task's changes: 9 KiB for 500 nodes).
func (f *casFixture) seedSized(t *testing.T, id string, state storagev1.WorkflowRecordState, n, pad int) *storagev1.WorkflowRecord {
	t.Helper()
	wf := &storagev1.WorkflowRecord{Id: id, Spec: initSpec("n1"), State: state, Nodes: []string{"n1"}}
	for i := range n {
		st := &storagev1.StepRecord{Name: fmt.Sprintf("n1/s%03d", i), Node: "n1", State: storagev1.StepRecordState_STEP_RECORD_STATE_PENDING, MaxAttempts: 1,
			Summary: strings.Repeat("x", pad)}
		switch i {
		case 0:
			st.State, st.Attempts, st.TaskId = storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING, 1, taskID(id, st.GetName(), 1)
		case 1:
			st.State, st.Attempts = storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED, 1
		case 2:
			st.State, st.Attempts = storagev1.StepRecordState_STEP_RECORD_STATE_FAILED, 1
		}
		if !terminal(state) && st.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_FAILED {
			st.State = storagev1.StepRecordState_STEP_RECORD_STATE_PENDING
		}
		if terminal(state) && st.GetState() == storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING {
			st.State = storagev1.StepRecordState_STEP_RECORD_STATE_FAILED
		}
		wf.Steps = append(wf.Steps, st)
	}
	ctx := context.Background()
	if err := writeSteps(ctx, f.st, wf); err != nil {
		t.Fatal(err)
	}
	ops, err := headerOps(wf)
	if err != nil {
		t.Fatal(err)
	}
	if !terminal(state) {
		ops = append(ops, store.Put(lockKey("n1"), []byte(id)))
	}
	if _, err := f.st.Txn(ctx, store.Txn{Then: ops}); err != nil {
		t.Fatal(err)
	}
	return wf
}

// steps is what the store holds of a workflow's steps, key → value.
func (f *casFixture) steps(t *testing.T, id string) map[string][]byte {
	t.Helper()
	kvs, _, err := f.st.List(context.Background(), StepPrefix+id+"/")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func sameSteps(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d step records, want %d", len(got), len(want))
	}
	changed := 0
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			changed++
		}
	}
	if changed > 0 {
		t.Fatalf("%d of %d steps were changed by a request that did not take effect", changed, len(want))
	}
}

// putHeader writes wf's header as a concurrent writer (another controller's engine) would,
// with the steps at idx, straight into the store.
func (f *casFixture) putHeader(wf *storagev1.WorkflowRecord, idx ...int) error {
	ops, err := putOps(wf, idx)
	if err != nil {
		return err
	}
	_, err = f.st.Txn(context.Background(), store.Txn{Then: ops})
	return err
}

// A cancel whose header compare-and-swap loses (the engine finished the workflow between
// the cancel's read and its write) changes no step.
func TestCancelThatLosesItsCASChangesNoStep(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		for _, n := range []int{4, 260} {
			t.Run(fmt.Sprintf("%d steps", n), func(t *testing.T) {
				f := newCASFixture(st)
				id := fmt.Sprintf("wf-cancel-%d", n)
				wf := f.seed(t, id, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, n)
				before := f.steps(t, id)
				f.hs.before = func(i int) error {
					if i != 1 {
						return nil
					}
					failed := &storagev1.WorkflowRecord{Id: id, Spec: wf.GetSpec(), State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, FailedStep: "n1/s000"}
					return f.putHeader(failed)
				}
				_, err := f.svc.Cancel(context.Background(), id)
				if !errors.Is(err, ErrWrongState) {
					t.Fatalf("cancel of a workflow that failed meanwhile: %v, want ErrWrongState", err)
				}
				sameSteps(t, f.steps(t, id), before)
				got, err := f.svc.Get(context.Background(), id)
				if err != nil || got.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_FAILED {
					t.Fatalf("workflow after the lost cancel: %v %v", got.GetState(), err)
				}
			})
		}
	})
}

// A retry whose header compare-and-swap loses changes no step: when another controller
// retried the workflow and its engine already moved a step, when another workflow took the
// node before the retry wrote anything, and when it took the node after the retry wrote
// its first steps (they are put back).
func TestRetryThatLosesItsCASChangesNoStep(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		for _, tc := range []struct {
			name   string
			steps  int
			at     int // the transaction before which the concurrent write lands
			retry  bool
			wantFn func(error) bool
		}{
			{"retried elsewhere, 4 steps", 4, 1, true, func(err error) bool { return errors.Is(err, ErrWrongState) }},
			{"retried elsewhere, 260 steps", 260, 1, true, func(err error) bool { return errors.Is(err, ErrWrongState) }},
			{"node taken, 4 steps", 4, 1, false, func(err error) bool { return errors.Is(err, ErrNodeLocked) }},
			{"node taken, 260 steps", 260, 1, false, func(err error) bool { return errors.Is(err, ErrNodeLocked) }},
			{"node taken after the first steps, 260 steps", 260, 2, false, func(err error) bool { return errors.Is(err, ErrNodeLocked) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newCASFixture(st)
				id := fmt.Sprintf("wf-retry-%d-%d-%t", tc.steps, tc.at, tc.retry)
				wf := f.seed(t, id, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_FAILED, tc.steps)
				want := f.steps(t, id)
				f.hs.before = func(i int) error {
					if i != tc.at {
						return nil
					}
					if tc.retry {
						// Another controller retried it, and its engine started step 2 again.
						moved := &storagev1.WorkflowRecord{Id: id, Spec: wf.GetSpec(), State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, Nodes: wf.GetNodes(), Steps: wf.GetSteps()}
						moved.Steps[2].State, moved.Steps[2].Attempts = storagev1.StepRecordState_STEP_RECORD_STATE_RUNNING, 2
						if err := f.putHeader(moved, 2); err != nil {
							return err
						}
						want = f.steps(t, id)
						return nil
					}
					_, err := f.st.Txn(context.Background(), store.Txn{Then: []store.Op{store.Put(lockKey("n1"), []byte("wf-other"))}})
					return err
				}
				_, err := f.svc.Retry(context.Background(), id)
				if !tc.wantFn(err) {
					t.Fatalf("retry that lost its race: %v", err)
				}
				sameSteps(t, f.steps(t, id), want)
			})
		}
	})
}

// Cancel and retry of a workflow with more steps than a transaction carries, small ones and
// big ones (100 steps of 20 KiB are more bytes than etcd takes in one request): every write
// fits etcd's limits, and everything lands.
func TestCancelAndRetryOfALargeWorkflow(t *testing.T) {
	for _, pad := range []int{0, 20 << 10} {
		t.Run(fmt.Sprintf("steps+%dB", pad), func(t *testing.T) { cancelAndRetryLarge(t, pad) })
	}
}

func cancelAndRetryLarge(t *testing.T, pad int) {
	backends(t, func(t *testing.T, st store.Store) {
		f := newCASFixture(st)
		ctx := context.Background()
		const id, n = "wf-large", 300
		f.seedSized(t, id, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, n, pad)
		if _, err := f.svc.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		wf, err := f.svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED {
			t.Fatalf("cancelled workflow is %v", wf.GetState())
		}
		for _, s := range wf.GetSteps() {
			if s.GetName() != "n1/s001" && s.GetState() != apiv1.StepState_STEP_STATE_CANCELLED {
				t.Fatalf("after cancel, step %s is %v", s.GetName(), s.GetState())
			}
		}
		if _, _, err := st.Get(ctx, lockKey("n1")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the cancelled workflow still holds n1: %v", err)
		}
		if _, err := f.svc.Retry(ctx, id); err != nil {
			t.Fatal(err)
		}
		if wf, err = f.svc.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
		for _, s := range wf.GetSteps() {
			if s.GetName() != "n1/s001" && s.GetState() != apiv1.StepState_STEP_STATE_PENDING {
				t.Fatalf("after retry, step %s is %v", s.GetName(), s.GetState())
			}
		}
		if kv, _, err := st.Get(ctx, lockKey("n1")); err != nil || string(kv.Value) != id || wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_RUNNING {
			t.Fatalf("retried workflow is %v and n1's lock %v (%v)", wf.GetState(), kv, err)
		}
		if f.hs.maxOps > etcdMaxTxnOps || f.hs.maxBytes > store.DefaultTxnLimits.Bytes {
			t.Fatalf("a write carried %d operations and %d bytes; etcd accepts %d and %d", f.hs.maxOps, f.hs.maxBytes, etcdMaxTxnOps, store.DefaultTxnLimits.Bytes)
		}
	})
}

// A controller that dies half way through a large cancel leaves a cancelled workflow whose
// later steps are still pending; cancelling it again finishes them.
func TestCancelCutShortIsFinishedByCancellingAgain(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		f := newCASFixture(st)
		ctx := context.Background()
		const id, n = "wf-cut", 300
		f.seed(t, id, storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_RUNNING, n)
		died := errors.New("the controller died")
		f.hs.before = func(i int) error {
			if i == 2 {
				return died
			}
			return nil
		}
		if _, err := f.svc.Cancel(ctx, id); !errors.Is(err, died) {
			t.Fatalf("cancel cut short: %v", err)
		}
		wf, _ := f.svc.Get(ctx, id)
		pending := 0
		for _, s := range wf.GetSteps() {
			if s.GetState() == apiv1.StepState_STEP_STATE_PENDING {
				pending++
			}
		}
		if wf.GetState() != apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED || pending == 0 || wf.GetSteps()[0].GetState() != apiv1.StepState_STEP_STATE_CANCELLED {
			t.Fatalf("after a cancel cut short: %v with %d steps pending, the running step %v", wf.GetState(), pending, wf.GetSteps()[0].GetState())
		}
		f.hs.before = nil
		if _, err := f.svc.Cancel(ctx, id); err != nil {
			t.Fatalf("cancelling again: %v", err)
		}
		wf, _ = f.svc.Get(ctx, id)
		for _, s := range wf.GetSteps() {
			if s.GetName() != "n1/s001" && s.GetState() != apiv1.StepState_STEP_STATE_CANCELLED {
				t.Fatalf("after cancelling again, step %s is %v", s.GetName(), s.GetState())
			}
		}
		if _, err := f.svc.Cancel(ctx, id); !errors.Is(err, ErrWrongState) {
			t.Fatalf("cancelling a finished cancel: %v, want ErrWrongState", err)
		}
	})
}

// A pass writes the header and the steps it changed, only those: one that changed none (it
// only ends the workflow, its end put off by the pass before, whose write was full) writes
// the header alone. It once wrote every step then: 13,000 operations for a 1,000-node apply,
// refused by the store pass after pass, and the apply never ended.
func TestAPassWritesOnlyTheStepsItChanged(t *testing.T) {
	wf := &storagev1.WorkflowRecord{Id: "wf-1", State: storagev1.WorkflowRecordState_WORKFLOW_RECORD_STATE_SUCCEEDED}
	for i := range 3 {
		wf.Steps = append(wf.Steps, &storagev1.StepRecord{Name: fmt.Sprintf("n%d/preflight", i), State: storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED})
	}
	for _, c := range []struct {
		changed map[int]bool
		want    int
	}{{map[int]bool{}, 1}, {map[int]bool{2: true}, 2}, {map[int]bool{0: true, 1: true, 2: true}, 4}} {
		steps := slices.Sorted(maps.Keys(c.changed)) // as a pass lists them: nil for none
		ops, err := putOps(wf, steps)
		if err != nil {
			t.Fatal(err)
		}
		if len(ops) != c.want || ops[0].Key != headerKey("wf-1") {
			t.Errorf("%d steps changed: %d operations, want the header and those steps (%d)", len(c.changed), len(ops), c.want)
		}
	}
}

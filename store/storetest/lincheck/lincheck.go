package lincheck

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/store"
)

// SeedEnv names the environment variable that replays one schedule: its value is the seed
// a failed run printed (the -lincheck.seed flag does the same).
const SeedEnv = "LINCHECK_SEED"

var seedFlag = flag.Int64("lincheck.seed", 0, "replay the lincheck schedule with this seed (0: a fresh seed)")

// Seed returns the seed to run: -lincheck.seed, else $LINCHECK_SEED, else a fresh one.
func Seed() int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	if s := os.Getenv(SeedEnv); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return time.Now().UnixNano()
}

// Cluster is the backend under test: replicas that may be down while a fault holds.
type Cluster interface {
	Size() int
	// Store returns replica i's store, or nil while the replica is down.
	Store(i int) store.Store
	// Elector returns replica i's elector, or nil while the replica is down.
	Elector(i int) store.Elector
}

// Fault is one kind of fault a backend's harness can inject.
type Fault struct {
	Name string
	// Inject starts the fault and returns what ends it (the heal, the restart). It may
	// block while the fault takes hold; clients keep running meanwhile.
	Inject func(t testing.TB, r *rand.Rand) (end func(), err error)
}

// Config shapes a schedule.
type Config struct {
	Seed   int64
	Faults []Fault
	// NumFaults faults run one after another, each held for Hold with Gap of calm around it,
	// cycling through Faults in a random order.
	NumFaults int
	Hold, Gap time.Duration
	// Clients per replica (default 2).
	Clients int
	// Keys in the checked keyspace (default 4).
	Keys int
	// OpTimeout bounds each operation (default 2s); a write that times out has an unknown
	// outcome.
	OpTimeout time.Duration
	// CheckTimeout bounds the linearizability check (default 60s).
	CheckTimeout time.Duration
	// SettleTimeout bounds waiting, after the last fault, for every watcher to catch up
	// (default 30s).
	SettleTimeout time.Duration
	// ResignEvery: a leader resigns after this many fenced writes and keeps writing under
	// its old fence until fenced, as a slow leader would (default 20).
	ResignEvery int
	// VisualizeDir receives Porcupine's visualization of a history found not linearizable,
	// lincheck-SEED.html (default: the system's temporary directory).
	VisualizeDir string
}

func (c *Config) defaults() {
	if c.Clients == 0 {
		c.Clients = 2
	}
	if c.Keys == 0 {
		c.Keys = 4
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 2 * time.Second
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = 60 * time.Second
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 30 * time.Second
	}
	if c.ResignEvery == 0 {
		c.ResignEvery = 20
	}
	if c.VisualizeDir == "" {
		c.VisualizeDir = os.TempDir()
	}
}

// Report is what one schedule did and found.
type Report struct {
	Seed                       int64
	Ops, Reads, Writes         int
	Unknown, Resolved          int // writes with an unknown outcome; of them, found applied
	FencedWrites, Terms        int
	WatchEvents, CompactedGaps int
	Faults                     []string
	CheckTime                  time.Duration
	Linearizable               string // porcupine's verdict
	// Undecided: the linearizability check did not finish within its timeout.
	Undecided  bool
	Violations []string
}

func (r *Report) String() string {
	return fmt.Sprintf("seed %d: %d ops (%d reads, %d writes), %d unknown (%d applied), %d fenced writes in %d terms, %d watch events, %d announced watch gaps, faults [%s], check %v: %s, %d violations",
		r.Seed, r.Ops, r.Reads, r.Writes, r.Unknown, r.Resolved, r.FencedWrites, r.Terms, r.WatchEvents, r.CompactedGaps,
		strings.Join(r.Faults, " "), r.CheckTime.Round(time.Millisecond), r.Linearizable, len(r.Violations))
}

const (
	keyPrefix   = "/lc/"
	deleteMark  = "/lc/~deleted" // every delete also writes a unique value here: it names the write
	fencePrefix = "/lcf/"
	fenceKey    = fencePrefix + "term"
)

// op is one recorded client operation.
type op struct {
	client    int
	call, ret int64 // ns since the run's start; ret 0 until it returns
	in        input
	out       output
	unknown   bool // a write whose outcome the client did not learn
	failed    bool // a read that failed: no effect, dropped
	err       error
	value     string
}

// fencedWrite is one write of a leader under its fence.
type fencedWrite struct {
	term    int
	value   string
	rev     int64
	applied bool
	unknown bool
}

type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []*op
	fence []*fencedWrite
	terms int
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

// Run runs one schedule against c and checks it. Setup failures fail t; what the checks
// find is in the report, for the caller to judge (a test of a deliberately broken store
// expects violations).
func Run(t testing.TB, c Cluster, cfg Config) *Report {
	t.Helper()
	cfg.defaults()
	if s := os.Getenv(FaultsEnv); s != "" && cfg.NumFaults > 0 {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			cfg.NumFaults = n
		}
	}
	rnd := rand.New(rand.NewSource(cfg.Seed))
	rep := &Report{Seed: cfg.Seed}
	rec := &recorder{start: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	watchers := make([]*watcher, c.Size())
	var wwg sync.WaitGroup
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	for i := range watchers {
		watchers[i] = &watcher{replica: i, c: c}
		wwg.Add(1)
		go func() { defer wwg.Done(); watchers[i].run(wctx) }()
	}

	var cwg sync.WaitGroup
	for i := range c.Size() * cfg.Clients {
		seed := rnd.Int63()
		cwg.Add(1)
		go func() { defer cwg.Done(); runClient(ctx, rec, c, cfg, i, i%c.Size(), rand.New(rand.NewSource(seed))) }()
	}
	for i := range c.Size() {
		seed := rnd.Int63()
		cwg.Add(1)
		go func() { defer cwg.Done(); runLeader(ctx, rec, c, cfg, i, rand.New(rand.NewSource(seed))) }()
	}

	calm := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	calm(cfg.Gap)
	order := rnd.Perm(len(cfg.Faults)) // every kind before any twice
	for n := 0; n < cfg.NumFaults && len(cfg.Faults) > 0; n++ {
		f := cfg.Faults[order[n%len(order)]]
		frnd := rand.New(rand.NewSource(rnd.Int63()))
		end, err := f.Inject(t, frnd)
		if err != nil {
			cancel()
			cwg.Wait()
			t.Fatalf("lincheck seed %d: inject %s: %v", cfg.Seed, f.Name, err)
		}
		rep.Faults = append(rep.Faults, f.Name)
		calm(cfg.Hold)
		if end != nil {
			end()
		}
		calm(cfg.Gap)
	}
	cancel()
	cwg.Wait()

	// Every watcher catches up with a final write made after everything else.
	final, err := finalWrite(c, cfg)
	if err != nil {
		t.Fatalf("lincheck seed %d: final write: %v", cfg.Seed, err)
	}
	deadline := time.Now().Add(cfg.SettleTimeout)
	for _, w := range watchers {
		for w.last() < final && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling the watcher's progress against a deadline
		}
		if got := w.last(); got < final {
			rep.Violations = append(rep.Violations, fmt.Sprintf("watcher on replica %d reached revision %d only, %v after the final write at %d", w.replica, got, cfg.SettleTimeout, final))
		}
	}
	wcancel()
	wwg.Wait()

	check(rep, rec, watchers, cfg)
	return rep
}

// finalWrite writes through the first replica that takes it.
func finalWrite(c Cluster, cfg Config) (int64, error) {
	var last error
	deadline := time.Now().Add(cfg.SettleTimeout)
	for time.Now().Before(deadline) {
		for i := range c.Size() {
			s := c.Store(i)
			if s == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
			rev, err := s.Txn(ctx, store.Txn{Then: []store.Op{store.Put(fencePrefix+"final", []byte("final"))}})
			cancel()
			if err == nil {
				return rev, nil
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, last
}

func keyName(i int) string { return fmt.Sprintf("%sk%d", keyPrefix, i) }

// runClient runs random operations against replica until ctx ends.
func runClient(ctx context.Context, rec *recorder, c Cluster, cfg Config, id, replica int, r *rand.Rand) {
	seen := map[string]store.KV{} // the last version of each key this client read
	var readRev int64             // the revision of its last read
	for seq := 0; ctx.Err() == nil; seq++ {
		s := c.Store(replica)
		if s == nil {
			time.Sleep(20 * time.Millisecond) // the replica is down; wait for its restart
			continue
		}
		key := keyName(r.Intn(cfg.Keys))
		value := fmt.Sprintf("c%d-%d", id, seq)
		o := &op{client: id}
		p := r.Intn(100)
		switch {
		case p < 30:
			o.in = input{kind: kindGet, key: key}
		case p < 45:
			prefix := keyPrefix
			if r.Intn(2) == 0 {
				prefix = keyPrefix + "k"
			}
			o.in = input{kind: kindList, key: prefix}
		case p < 65: // CAS on the last revision seen
			o.in = input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.ModRevisionIs(key, seen[key].ModRevision)}, Then: []store.Op{store.Put(key, []byte(value))}}}
		case p < 72: // CAS on the last value seen
			o.in = input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.ValueIs(key, seen[key].Value)}, Then: []store.Op{store.Put(key, []byte(value))}}}
		case p < 82: // create if absent
			o.in = input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.Absent(key)}, Then: []store.Op{store.Put(key, []byte(value))}}}
		case p < 87: // delete what was seen
			o.in = input{kind: kindTxn, txn: store.Txn{If: []store.Compare{store.ModRevisionIs(key, seen[key].ModRevision)}, Then: []store.Op{store.Delete(key), store.Put(deleteMark, []byte(value))}}}
		case p < 89: // delete every key
			o.in = input{kind: kindTxn, txn: store.Txn{Then: []store.Op{store.DeletePrefix(keyPrefix + "k"), store.Put(deleteMark, []byte(value))}}}
		case p < 95: // move: CAS on two keys at once
			other := keyName(r.Intn(cfg.Keys))
			if other == key {
				other = deleteMark
			}
			o.in = input{kind: kindTxn, txn: store.Txn{
				If:   []store.Compare{store.ModRevisionIs(key, seen[key].ModRevision), store.ModRevisionIs(other, seen[other].ModRevision)},
				Then: []store.Op{store.Delete(key), store.Put(other, []byte(value))},
			}}
		case p < 96: // compact history well behind the last revision seen (watchers that
			// resume behind it are told ErrCompacted); no effect on the model
			if readRev > 200 {
				cctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
				_ = s.Compact(cctx, readRev-200)
				cancel()
			}
			continue
		default: // blind put
			o.in = input{kind: kindTxn, txn: store.Txn{Then: []store.Op{store.Put(key, []byte(value))}}}
		}
		if o.in.kind == kindTxn {
			o.value = value
		}
		octx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
		o.call = rec.now()
		switch o.in.kind {
		case kindGet:
			kv, rev, err := s.Get(octx, o.in.key)
			o.out.rev = rev
			readRev = max(readRev, rev)
			switch {
			case err == nil:
				o.out.found, o.out.kvs = true, []store.KV{*kv}
				seen[key] = *kv
			case errors.Is(err, store.ErrNotFound):
				delete(seen, key)
			default:
				o.failed, o.err = true, err
			}
		case kindList:
			kvs, rev, err := s.List(octx, o.in.key)
			o.out.rev = rev
			readRev = max(readRev, rev)
			if err != nil {
				o.failed, o.err = true, err
			}
			for _, kv := range kvs {
				o.out.kvs = append(o.out.kvs, *kv)
				seen[kv.Key] = *kv
			}
		case kindTxn:
			rev, err := s.Txn(octx, o.in.txn)
			o.out.rev = rev
			switch {
			case err == nil:
				o.out.outcome = outApplied
			case errors.Is(err, store.ErrConflict):
				o.out.outcome = outConflict
			case errors.Is(err, store.ErrInvalid):
				o.failed, o.err = true, err
			default:
				o.unknown, o.err = true, err
			}
		}
		o.ret = rec.now()
		cancel()
		rec.mu.Lock()
		rec.ops = append(rec.ops, o)
		rec.mu.Unlock()
	}
}

// runLeader campaigns on replica and, while it leads, writes under its fence; every
// ResignEvery writes it resigns but keeps writing under the old fence until it is fenced,
// as a leader that has not yet noticed would.
func runLeader(ctx context.Context, rec *recorder, c Cluster, cfg Config, replica int, r *rand.Rand) {
	for ctx.Err() == nil {
		el := c.Elector(replica)
		if el == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		l, err := el.Campaign(cctx)
		cancel()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		rec.mu.Lock()
		rec.terms++
		term := rec.terms
		rec.mu.Unlock()
		resignAt := cfg.ResignEvery + r.Intn(cfg.ResignEvery)
		failures := 0
		for n := 0; ; n++ {
			if n == resignAt {
				go func() {
					rctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
					defer cancel()
					_ = l.Resign(rctx)
				}()
			}
			w := &fencedWrite{term: term, value: fmt.Sprintf("t%d-%d", term, n)}
			wctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
			s := c.Store(replica)
			if s == nil {
				cancel()
				break
			}
			rev, err := s.Txn(wctx, store.Txn{If: []store.Compare{l.Fence()}, Then: []store.Op{store.Put(fenceKey, []byte(w.value))}})
			cancel()
			switch {
			case err == nil:
				w.rev, w.applied = rev, true
			case errors.Is(err, store.ErrFenced):
			default:
				w.unknown = true
			}
			rec.mu.Lock()
			rec.fence = append(rec.fence, w)
			rec.mu.Unlock()
			if err != nil {
				failures++
			} else {
				failures = 0
			}
			if errors.Is(err, store.ErrFenced) || failures >= 5 || n > resignAt+50 || ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // pacing: a leader's writes are not a load test

		}
		rctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
		_ = l.Resign(rctx)
		cancel()
	}
}

// FaultsEnv names the environment variable with the number of faults per schedule (the
// soak's longer schedules); a schedule configured without faults keeps none.
const FaultsEnv = "LINCHECK_FAULTS"

// SchedulesEnv names the environment variable with the number of schedules a backend's
// checker test runs (default 1; the soak runs many).
const SchedulesEnv = "LINCHECK_SCHEDULES"

// Schedules runs one schedule per seed as subtests, fails each that found a violation
// (printing its seed so it replays), and logs a summary line for the soak's figures. backend
// names the package under store/ that runs it.
func Schedules(t *testing.T, backend string, run func(t *testing.T, seed int64) *Report) {
	n := 1
	if s := os.Getenv(SchedulesEnv); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			n = v
		}
	}
	base := Seed()
	var sum Report
	var checkTime, checkTotal time.Duration
	faults, ran, undecided := 0, 0, 0
	soak := n > 1
	for i := range n {
		seed := base + int64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rep := run(t, seed)
			if rep == nil {
				return
			}
			ran++
			sum.Ops += rep.Ops
			sum.Reads += rep.Reads
			sum.Writes += rep.Writes
			sum.Unknown += rep.Unknown
			sum.Resolved += rep.Resolved
			sum.FencedWrites += rep.FencedWrites
			sum.Terms += rep.Terms
			sum.WatchEvents += rep.WatchEvents
			sum.CompactedGaps += rep.CompactedGaps
			sum.Violations = append(sum.Violations, rep.Violations...)
			faults += len(rep.Faults)
			checkTime = max(checkTime, rep.CheckTime)
			checkTotal += rep.CheckTime
			t.Log(rep.String())
			for _, v := range rep.Violations {
				t.Errorf("violation: %s", v)
			}
			if rep.Undecided {
				// A soak must decide every schedule; a single short one (make test) reports
				// it and goes on: nothing wrong was found, the search ran out of time.
				undecided++
				report := t.Logf
				if soak {
					report = t.Errorf
				}
				report("linearizability check not decided within its timeout (no violation found, none ruled out)")
			}
			if len(rep.Violations) > 0 || soak && rep.Undecided {
				t.Errorf("replay: %s=%d go test -race -run '%s' ./store/%s/ (or -lincheck.seed %d)", SeedEnv, seed, t.Name(), backend, seed)
			}
		})
	}
	t.Logf("lincheck summary: %s: %d schedules, %d faults, %d ops (%d reads, %d writes), %d unknown outcomes (%d resolved as applied), %d fenced writes in %d terms, %d watch events, %d announced watch gaps, linearizability checks %v in all (slowest %v, %d undecided), %d violations",
		backend, ran, faults, sum.Ops, sum.Reads, sum.Writes, sum.Unknown, sum.Resolved, sum.FencedWrites, sum.Terms, sum.WatchEvents, sum.CompactedGaps, checkTotal.Round(time.Millisecond), checkTime.Round(time.Millisecond), undecided, len(sum.Violations))
}

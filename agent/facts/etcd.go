package facts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
)

// EtcdSnapshotDir is where a control plane keeps etcd snapshots: NAME.db (0600) and NAME.json,
// its EtcdSnapshotMeta.
const EtcdSnapshotDir = "/var/lib/deckhand/etcd-snapshots"

// MaxEtcdSnapshots bounds the snapshots a node's facts list (the newest).
const MaxEtcdSnapshots = 64

// SnapshotNameRE is the shape of a snapshot's name.
var SnapshotNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// EtcdSnapshotMeta is what the agent records beside a snapshot when it takes it.
type EtcdSnapshotMeta struct {
	Name     string    `json:"name"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Revision int64     `json:"revision"`
	Taken    time.Time `json:"taken"`
}

// ReadEtcdSnapshots lists the snapshots under root's EtcdSnapshotDir, newest first (all of
// them: the caller bounds). A snapshot without a readable record is left out.
func ReadEtcdSnapshots(root string) []EtcdSnapshotMeta {
	dir := filepath.Join(root, EtcdSnapshotDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []EtcdSnapshotMeta
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !SnapshotNameRE.MatchString(name) {
			continue
		}
		b, err := readSmall(filepath.Join(dir, e.Name()), 4096)
		var m EtcdSnapshotMeta
		if err != nil || json.Unmarshal(b, &m) != nil || m.Name != name {
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b EtcdSnapshotMeta) int {
		if c := b.Taken.Compare(a.Taken); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func readSmall(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, limit+1)
	n, _ := f.Read(b)
	if int64(n) > limit {
		return nil, os.ErrInvalid
	}
	return b[:n], nil
}

// etcdSnapshots are the facts' view of the snapshots: the recorded SHA-256 and size, and
// the file's size now (a truncated or missing file shows).
func (c *Collector) etcdSnapshots() []*agentv1.EtcdSnapshot {
	var out []*agentv1.EtcdSnapshot
	for _, m := range ReadEtcdSnapshots(c.root()) {
		if len(out) == MaxEtcdSnapshots {
			break
		}
		s := &agentv1.EtcdSnapshot{Name: m.Name, Sha256: m.SHA256, RecordedSize: uint64(max(m.Size, 0)), Revision: m.Revision, Taken: timestamppb.New(m.Taken)}
		if fi, err := os.Stat(c.hostPath(filepath.Join(EtcdSnapshotDir, m.Name+".db"))); err == nil {
			s.Size = uint64(fi.Size())
		}
		out = append(out, s)
	}
	return out
}

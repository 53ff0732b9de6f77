package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// The snapshots a control plane keeps reach deckctl etcd snapshots through its facts: name,
// size, revision and SHA-256, and a file that shrank since it was taken is marked damaged.
func TestEtcdSnapshotsListsWhatTheNodesKeep(t *testing.T) {
	c := testcluster.New(t, 1)
	cfg := c.AgentConfig("cp-1", c.CreateToken(1))
	cfg.FactsInterval = time.Second
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Root, "var/lib/deckhand/etcd-snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	for name, size := range map[string]int{"nightly": 4096, "cut": 100} {
		meta := fmt.Sprintf(`{"name":%q,"sha256":%q,"size":4096,"revision":77,"taken":"2026-12-01T03:00:00Z"}`, name, sum)
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".db"), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testcluster.WaitFor(t, 30*time.Second, func() error {
		out, err := deckctlAs(c, c.AdminConfig(), "etcd", "snapshots", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		var v struct {
			Snapshots []struct {
				Node, Name, SHA256 string
				Size, RecordedSize uint64
				Revision           int64
				Damaged            bool
			}
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return err
		}
		got := map[string]string{}
		for _, s := range v.Snapshots {
			got[s.Name] = fmt.Sprintf("%s %d/%d r%d %v %v", s.Node, s.Size, s.RecordedSize, s.Revision, s.Damaged, s.SHA256 == sum)
		}
		if got["nightly"] != "cp-1 4096/4096 r77 false true" || got["cut"] != "cp-1 100/4096 r77 true true" {
			return fmt.Errorf("deckctl etcd snapshots: %v\n%s", got, out)
		}
		return nil
	})
	out, err := deckctlAs(c, c.AdminConfig(), "etcd", "snapshots")
	if err != nil || !strings.Contains(out, "100 (DAMAGED: 4096 when taken)") || !strings.Contains(out, "nightly") {
		t.Fatalf("deckctl etcd snapshots: %v\n%s", err, out)
	}
	// Without a cluster there is nothing to restore (the damaged snapshot's refusal is
	// decideRestore's, table-tested, and the real lab's).
	out, err = deckctlAs(c, c.AdminConfig(), "etcd", "restore", "--from", "nightly", "--force")
	if err == nil || !strings.Contains(out+fmt.Sprint(err), "no cluster yet") {
		t.Fatalf("a restore without a cluster: %v\n%s", err, out)
	}
}

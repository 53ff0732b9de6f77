package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// deckctlWith runs the CLI in-process with only a credential file: no --controller.
func deckctlWith(config string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	root := cli.NewRoot(&out, &errOut)
	root.SetArgs(append([]string{"--config", config, "--timeout", "20s"}, args...))
	err := root.Execute()
	return out.String() + errOut.String(), err
}

func copyConfig(t *testing.T, from string, controllers []string) string {
	t.Helper()
	cfg, err := clientconfig.Load(from)
	if err != nil {
		t.Fatal(err)
	}
	if controllers != nil {
		cfg.Controllers = controllers
	}
	to := filepath.Join(t.TempDir(), "config")
	if err := cfg.Write(to); err != nil {
		t.Fatal(err)
	}
	return to
}

// After the controller that wrote admin.conf was killed, deckctl said "no controller
// answered (A: not reachable)" although two controllers served: admin.conf listed only A.
// Now the controller lists every replica in it, and deckctl writes the replicas into an
// older file that names one controller.
func TestDeckctlWorksWhenTheControllerThatWroteItsConfigIsGone(t *testing.T) {
	t.Setenv("DECKHAND_CONTROLLER", "")
	c := testcluster.New(t, 3)
	addrs := c.Addrs()
	var ids []string
	for _, ctl := range c.Controllers {
		ids = append(ids, ctl.ID())
	}

	// A's admin.conf lists every controller once they joined.
	testcluster.WaitFor(t, 20*time.Second, func() error {
		cfg, err := clientconfig.Load(c.AdminConfig())
		if err != nil {
			return err
		}
		if got := slices.Sorted(slices.Values(cfg.Controllers)); !slices.Equal(got, slices.Sorted(slices.Values(addrs))) {
			return fmt.Errorf("admin.conf lists %v, want %v", cfg.Controllers, addrs)
		}
		return nil
	})
	adminCopy := copyConfig(t, c.AdminConfig(), nil)

	// A file from before, naming only A, learns the others on its first use.
	old := copyConfig(t, c.AdminConfig(), addrs[:1])
	if out, err := deckctlWith(old, "members"); err != nil {
		t.Fatalf("deckctl members with a single-controller file: %v\n%s", err, out)
	}
	cfg, err := clientconfig.Load(old)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Controllers[:1], addrs[:1]) || len(cfg.Controllers) != 3 {
		t.Fatalf("the old file lists %v after deckctl ran, want A first and all three", cfg.Controllers)
	}
	if fi, err := os.Stat(old); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the rewritten file: %v %v, want mode 0600", fi, err)
	}

	c.Kill(0)
	for _, conf := range []string{adminCopy, old} {
		out, err := deckctlWith(conf, "members")
		if err != nil {
			t.Fatalf("deckctl members with A dead (%s): %v\n%s", conf, err, out)
		}
		for _, id := range ids[1:] {
			if !strings.Contains(out, id) {
				t.Fatalf("deckctl members does not list %s:\n%s", id, out)
			}
		}
	}
}

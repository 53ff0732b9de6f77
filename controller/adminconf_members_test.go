package controller_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// Every replica's admin.conf lists every replica, itself first, and follows the membership:
// a removed replica leaves the list.
func TestAdminConfListsTheReplicas(t *testing.T) {
	c := testcluster.New(t, 3)
	addrs := c.Addrs()
	lists := func(i int, want []string) error {
		cfg, err := clientconfig.Load(filepath.Join(c.Controllers[i].Dir, "admin.conf"))
		if err != nil {
			return err
		}
		if len(cfg.Controllers) == 0 || cfg.Controllers[0] != addrs[i] {
			return fmt.Errorf("admin.conf of replica %d lists %v: want itself (%s) first", i, cfg.Controllers, addrs[i])
		}
		if got := slices.Sorted(slices.Values(cfg.Controllers)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("admin.conf of replica %d lists %v, want %v", i, cfg.Controllers, want)
		}
		return nil
	}
	for i := range c.Controllers {
		testcluster.WaitFor(t, 20*time.Second, func() error { return lists(i, addrs) })
	}

	gone := (c.WaitLeader() + 1) % 3
	if _, err := removeMember(c, c.Controllers[gone].ID(), true); err != nil {
		t.Fatalf("remove replica %d: %v", gone, err)
	}
	left := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return a == addrs[gone] })
	for i := range c.Controllers {
		if i != gone {
			testcluster.WaitFor(t, 20*time.Second, func() error { return lists(i, left) })
		}
	}
}

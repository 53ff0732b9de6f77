package client

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// orderEndpoints is the order controllers are tried in: the listed order, except that
// those that failed within failedFor come last, the one that failed longest ago first.
func orderEndpoints(endpoints []string, failed map[string]time.Time, now time.Time) []string {
	var good, bad []string
	for _, e := range endpoints {
		if t, ok := failed[e]; ok && now.Sub(t) < failedFor {
			bad = append(bad, e)
		} else {
			good = append(good, e)
		}
	}
	sort.SliceStable(bad, func(i, j int) bool { return failed[bad[i]].Before(failed[bad[j]]) })
	return append(good, bad...)
}

// mergeEndpoints is the controller list to keep given the one in hand and the members'
// addresses: every member, in the order known so far and the new ones after; an address
// that is not a member stays unless it failed (it may be a load balancer or a tunnel to
// the controllers; one that failed and is no member is a removed controller).
func mergeEndpoints(known, members []string, failed func(string) bool) []string {
	var out []string
	for _, e := range known {
		if (slices.Contains(members, e) || !failed(e)) && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	for _, m := range members {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Refresh asks the controllers for their members' addresses and adds them to the list the
// client tries (SaveEndpoints writes it to the credential file).
func (c *Client) Refresh(ctx context.Context) error {
	resp, err := c.Members().ListMembers(ctx, &apiv1.ListMembersRequest{})
	if err != nil {
		return fmt.Errorf("list the controllers: %w", err)
	}
	var members []string
	for _, m := range resp.GetMembers() {
		if a := strings.TrimSpace(m.GetAddress()); a != "" && !slices.Contains(members, a) {
			members = append(members, a)
		}
	}
	if len(members) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = members
	c.endpoints = mergeEndpoints(c.endpoints, members, c.failedRecently)
	return nil
}

func (c *Client) failedRecently(addr string) bool {
	t, ok := c.failed[addr]
	return ok && c.now().Sub(t) < failedFor
}

// SaveEndpoints writes the controller list learnt by Refresh into the credential file when
// it differs from the file's (the file is read again first, and written atomically with
// mode 0600 and its owner kept), so the file keeps working when the controller it named
// is gone. It reports whether it wrote.
func (c *Client) SaveEndpoints() (bool, error) {
	c.mu.Lock()
	members := c.members
	failed := map[string]bool{}
	for a := range c.failed {
		failed[a] = c.failedRecently(a)
	}
	c.mu.Unlock()
	if len(members) == 0 {
		return false, nil
	}
	path := c.file
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p // replace the file a link points to, not the link
	}
	cfg, err := clientconfig.Load(path)
	if err != nil {
		return false, err
	}
	want := mergeEndpoints(cfg.Controllers, members, func(a string) bool { return failed[a] })
	if slices.Equal(want, cfg.Controllers) {
		return false, nil
	}
	cfg.Controllers = want
	if err := cfg.Write(path); err != nil {
		return false, fmt.Errorf("update the controllers in %s: %w", c.file, err)
	}
	return true, nil
}

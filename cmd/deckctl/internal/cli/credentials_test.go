package cli_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// deckctlAs runs the CLI in-process with the credential file config.
func deckctlAs(c *testcluster.Cluster, config string, args ...string) (string, error) {
	return deckctlTo(strings.Join(c.Addrs(), ","), config, args...)
}

func deckctlTo(controllers, config string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	root := cli.NewRoot(&out, &errOut)
	root.SetArgs(append([]string{"--config", config, "--controller", controllers, "--timeout", "10s"}, args...))
	err := root.Execute()
	return out.String() + errOut.String(), err
}

// People shared admin.conf: nothing issued or revoked a credential of their own.
func TestCredentialsCreateUseRevoke(t *testing.T) {
	c := testcluster.New(t, 3)
	admin := c.AdminConfig()
	dir := t.TempDir()
	file := filepath.Join(dir, "alice.conf")

	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--name", "alice", "--role", "root"}, "--role"},
		{[]string{"--name", "alice", "--role", "viewer", "--ttl", "1s"}, "--ttl"},
		{[]string{"--name", "alice", "--role", "viewer", "--ttl", "10000h"}, "--ttl"},
		{[]string{"--name", "Alice!", "--role", "viewer"}, "--name"},
	} {
		_, err := deckctlAs(c, admin, append([]string{"credentials", "create", "--file", file}, tc.args...)...)
		if err == nil || !strings.HasPrefix(err.Error(), tc.flag+" ") {
			t.Errorf("credentials create %v: %v, want an error naming %s", tc.args, err, tc.flag)
		}
	}

	out, err := deckctlAs(c, admin, "credentials", "create", "--name", "alice", "--role", "viewer", "--ttl", "24h", "--file", file)
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file: %v %v", fi, err)
	}
	if _, err := deckctlAs(c, admin, "credentials", "create", "--name", "alice", "--role", "admin", "--file", filepath.Join(dir, "again.conf")); err == nil || !strings.Contains(err.Error(), "ALREADY_EXISTS") {
		t.Fatalf("a second alice: %v", err)
	}
	// alice reads, but may not write.
	if out, err := deckctlAs(c, file, "nodes"); err != nil {
		t.Fatalf("alice lists nodes: %v\n%s", err, out)
	}
	if _, err := deckctlAs(c, file, "token", "create"); err == nil || !strings.Contains(err.Error(), "PERMISSION_DENIED") {
		t.Fatalf("a viewer created a token: %v", err)
	}
	// deckctl certs shows the CA, each replica and alice's own expiry.
	out, err = deckctlAs(c, file, "certs")
	if err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^ca\s+deckhand-ca\s`).MatchString(out) || strings.Count(out, "replica ") != 3 ||
		!regexp.MustCompile(`(?m)^you \(viewer\)\s+alice\s+\S+\s+\S+\s+2[34]h`).MatchString(out) || strings.Contains(out, "unreachable") {
		t.Fatalf("certs:\n%s", out)
	}

	out, err = deckctlAs(c, admin, "credentials", "list")
	if err != nil || !regexp.MustCompile(`(?m)^alice\s+viewer\s+\S+\s+\S+\s+valid\s+admin$`).MatchString(out) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := deckctlAs(c, admin, "credentials", "revoke", "alice"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	// Every replica refuses alice from now on; the admin still works.
	for _, addr := range c.Addrs() {
		testcluster.WaitFor(t, 10*time.Second, func() error {
			out, err := deckctlTo(addr, file, "nodes")
			if err == nil {
				return errors.New("a revoked credential still works")
			}
			if !strings.Contains(err.Error(), "revoked") {
				return fmt.Errorf("refusal does not say revoked: %v %s", err, out)
			}
			return nil
		})
	}
	if out, err := deckctlAs(c, admin, "nodes"); err != nil {
		t.Fatalf("admin after the revocation: %v\n%s", err, out)
	}

	// Each replica's admin.conf is listed too, and a leaked copy can be revoked.
	testcluster.WaitFor(t, 15*time.Second, func() error {
		out, err := deckctlAs(c, admin, "credentials", "list")
		if err != nil {
			return err
		}
		for _, ctl := range c.Controllers {
			if !regexp.MustCompile(`(?m)^admin\.conf-` + ctl.ID() + `\s+admin\s+\S+\s+\S+\s+valid\s`).MatchString(out) {
				return fmt.Errorf("admin.conf of %s not listed:\n%s", ctl.ID(), out)
			}
		}
		return nil
	})
	leaked := filepath.Join(c.Controllers[1].Dir, "admin.conf")
	if out, err := deckctlAs(c, admin, "credentials", "revoke", "admin.conf-"+c.Controllers[1].ID()); err != nil {
		t.Fatalf("revoke an admin.conf: %v\n%s", err, out)
	}
	testcluster.WaitFor(t, 10*time.Second, func() error {
		if _, err := deckctlAs(c, leaked, "nodes"); err == nil || !strings.Contains(err.Error(), "revoked") {
			return fmt.Errorf("the revoked admin.conf: %v", err)
		}
		return nil
	})
	if out, err := deckctlAs(c, admin, "credentials", "list"); err != nil {
		t.Fatalf("the other admin.conf after the revocation: %v\n%s", err, out)
	}
	out, err = deckctlAs(c, admin, "credentials", "list")
	if err != nil || !regexp.MustCompile(`(?m)^alice\s+viewer\s+\S+\s+\S+\s+revoked `).MatchString(out) {
		t.Fatalf("list after revoke: %v\n%s", err, out)
	}
}

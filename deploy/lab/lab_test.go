// Package lab_test runs `make lab` and `make lab-down` as a newcomer would and checks that
// the lab ends with 4 nodes in the cluster and that lab-down leaves nothing behind.
package lab_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
	}
	return out.String()
}

// leftovers lists what of the lab still exists: processes whose command line names its
// directory, network namespaces and links it creates, mounts under it, and the directory.
func leftovers(t *testing.T, dir string) []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			left = append(left, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "dhlab-") {
				left = append(left, "netns "+l)
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if regexp.MustCompile(`: (dhlab0|dhl-[a-z0-9-]+)[@:]`).MatchString(l) {
				left = append(left, "link "+l)
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " "+dir) {
				left = append(left, "mount "+l)
			}
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	return left
}

func TestLabUpAndDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the whole lab")
	}
	dir := filepath.Join(os.TempDir(), "dh-lab-test")
	env := []string{"DECKHAND_LAB_DIR=" + dir}
	t.Cleanup(func() {
		if len(leftovers(t, dir)) > 0 {
			_ = exec.Command("../../scripts/lab-down.sh").Run()
		}
	})
	out := run(t, 8*time.Minute, env, "make", "lab")
	table := out[strings.LastIndex(out, "NAME "):]
	for _, n := range []string{"node-1", "node-2", "node-3", "node-4"} {
		if !regexp.MustCompile(`(?m)^` + n + `\s+Ready\s+(control-plane|worker)\s`).MatchString(table) {
			t.Fatalf("the node table does not show %s in the cluster:\n%s", n, out)
		}
	}
	if !strings.Contains(out, "join node-4") || !strings.Contains(out, "node-4/join") {
		t.Fatalf("make lab did not join node-4 with the live view:\n%s", out)
	}
	if len(leftovers(t, dir)) == 0 {
		t.Fatal("make lab left nothing running")
	}
	run(t, 2*time.Minute, env, "make", "lab-down")
	if left := leftovers(t, dir); len(left) > 0 {
		t.Fatalf("make lab-down left:\n%s", strings.Join(left, "\n"))
	}
}

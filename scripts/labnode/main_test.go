package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A helper process for the tests below: in the mount namespace it was started in, it mounts
// an overlay whose upper directory is DECKHAND_TEST_UPPER (as a lab host's holder mounts
// over /etc), says so on stdout and waits to be killed.
func TestHelperHostProcess(t *testing.T) {
	upper := os.Getenv("DECKHAND_TEST_UPPER")
	if upper == "" {
		return
	}
	base := filepath.Dir(filepath.Dir(upper))
	lower, work, target := filepath.Join(base, "lower"), filepath.Join(base, "fs", ".work-etc"), filepath.Join(base, "target")
	for _, d := range []string{lower, work, target, upper} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
	}
	if err := unix.Mount("overlay", target, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // the process under test: stopHost kills it, or the test does
	os.Exit(0)
}

// start starts a process in a mount namespace of its own: a lab host's (with its overlay
// under state) when host is true, else one that merely reuses the namespace number.
func start(t *testing.T, state string, host bool) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHostProcess$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	upper := filepath.Join(t.TempDir(), "fs", "etc") // another host's overlay
	if host {
		upper = filepath.Join(state, "fs", "etc")
	}
	cmd.Env = append(os.Environ(), "DECKHAND_TEST_UPPER="+upper)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	go func() { done <- cmd.Wait() }()
	if line != "ready\n" {
		t.Fatalf("helper: %q", line)
	}
	return cmd, done
}

func mntns(t *testing.T, pid int) string {
	t.Helper()
	v, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func writeState(t *testing.T, state string, pid int, mnt string) {
	t.Helper()
	for f, v := range map[string]string{"holder.pid": strconv.Itoa(pid), "mntns": mnt} {
		if err := os.WriteFile(filepath.Join(state, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// labnode down stops the host's holder and what is left in its mount namespace, and only
// those: a holder PID or namespace number the kernel has since given to another process
// (another lab's host, anything on the machine) is left alone.
func TestStopHostStopsOnlyItsOwnProcesses(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a mount namespace (CI runs the tests as root)")
	}
	state := t.TempDir()

	// A stale PID file and namespace number: both now belong to a process that is not the host's.
	other, otherDone := start(t, state, false)
	writeState(t, state, other.Process.Pid, mntns(t, other.Process.Pid))
	stopHost(state, 2*time.Second, time.Second)
	select { // the signals it would have sent are sent: a second is ample for them to act
	case err := <-otherDone:
		otherDone <- err
		t.Fatalf("labnode down killed a process that is not its host's (stale PID and namespace number): %v", err)
	case <-time.After(time.Second):
	}

	// The PID file names the machine's own namespace: never a reason to kill anything.
	self := mntns(t, os.Getpid())
	writeState(t, state, other.Process.Pid, self)
	stopHost(state, 2*time.Second, time.Second)
	select {
	case err := <-otherDone:
		otherDone <- err
		t.Fatalf("labnode down acted on its own mount namespace: %v", err)
	case <-time.After(time.Second):
	}

	// The host's holder: stopped.
	holder, holderDone := start(t, state, true)
	writeState(t, state, holder.Process.Pid, mntns(t, holder.Process.Pid))
	stopHost(state, 5*time.Second, 5*time.Second)
	select {
	case err := <-holderDone:
		holderDone <- err
	case <-time.After(10 * time.Second):
		t.Fatal("labnode down left the host's holder running")
	}
}

// Each lab host's NAT address is its own (the lab address's last octet), with the gateway
// at .1 of the NAT subnet; anything but an IPv4 host address is refused.
func TestNATAddress(t *testing.T) {
	addr, gw, err := natAddress("10.250.3.22")
	if err != nil || addr.String() != "10.250.200.22/24" || gw.String() != "10.250.200.1" {
		t.Fatalf("natAddress(10.250.3.22) = %v %v %v", addr, gw, err)
	}
	for _, bad := range []string{"", "fd00::1", "10.250.3.1", "10.250.3.255", "node-1"} {
		if _, _, err := natAddress(bad); err == nil {
			t.Errorf("natAddress(%q) accepted", bad)
		}
	}
}

// A Vagrant box's /etc/hosts: its own name on 127.0.1.1, the other hosts unchanged.
func TestVagrantHosts(t *testing.T) {
	in := "127.0.0.1 localhost\n10.250.3.21 node-1\n10.250.3.22 node-2 node-2.lab\n10.250.3.23 node-3\n"
	want := "127.0.0.1 localhost\n10.250.3.21 node-1\n10.250.3.22 node-2.lab\n10.250.3.23 node-3\n127.0.1.1 node-2\n"
	if got := string(vagrantHosts([]byte(in), "node-2")); got != want {
		t.Errorf("vagrantHosts = %q, want %q", got, want)
	}
	want = "127.0.0.1 localhost\n10.250.3.22 node-2 node-2.lab\n10.250.3.23 node-3\n127.0.1.1 node-1\n"
	if got := string(vagrantHosts([]byte(in), "node-1")); got != want {
		t.Errorf("vagrantHosts = %q, want %q", got, want)
	}
}

package lab_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
)

// lab is a running lab (make lab with DECKHAND_LAB_APPLY=0) in network namespaces.
type lab struct {
	t   *testing.T
	dir string
	env []string
	// From the lab's lab.env: its namespaces are PREFIX-HOST, its subnet NET.0/24.
	prefix, net string
}

// readEnv loads the names the lab chose (they differ per lab, so two labs run side by side).
func (l *lab) readEnv() {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "lab.env"))
	if err != nil {
		l.t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "prefix":
			l.prefix = v
		case "net":
			l.net = v
		}
	}
}

func (l *lab) ctlAddr(name string) string {
	return fmt.Sprintf("%s.%d", l.net, 11+int(name[len(name)-1]-'0'))
}

func (l *lab) deckctl(args ...string) (string, error) {
	cmd := exec.Command("../../bin/deckctl", append([]string{"--timeout", "20s"}, args...)...)
	cmd.Env = append(os.Environ(), "DECKHAND_CONFIG="+filepath.Join(l.dir, "ctl-0", "admin.conf"),
		fmt.Sprintf("DECKHAND_CONTROLLER=%s:7400,%s:7400,%s:7400", l.ctlAddr("ctl-0"), l.ctlAddr("ctl-1"), l.ctlAddr("ctl-2")))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (l *lab) must(args ...string) string {
	l.t.Helper()
	out, err := l.deckctl(args...)
	if err != nil {
		l.t.Fatalf("deckctl %v: %v\n%s", args, err, out)
	}
	return out
}

func (l *lab) pid(name string) int {
	b, err := os.ReadFile(filepath.Join(l.dir, name+".pid"))
	if err != nil {
		l.t.Fatal(err)
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

// kill SIGKILLs a lab process and waits until it is gone.
func (l *lab) kill(name string) {
	l.t.Helper()
	p := l.pid(name)
	_ = syscall.Kill(p, syscall.SIGKILL)
	testcluster.WaitFor(l.t, 10*time.Second, func() error {
		if syscall.Kill(p, 0) == nil {
			return fmt.Errorf("%s (%d) still running", name, p)
		}
		return nil
	})
}

// restart starts a lab process again with its recorded command, minus the first-start
// flags (join and enrollment), as an operator's service manager would.
func (l *lab) restart(name string) {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, name+".cmd"))
	if err != nil {
		l.t.Fatal(err)
	}
	var argv []string
	all := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for i := 0; i < len(all); i++ {
		switch all[i] {
		case "--join", "--token-file", "--ca-cert-hash":
			i++
			continue
		}
		argv = append(argv, all[i])
	}
	log, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	go func() { _ = cmd.Wait() }()
	_ = os.WriteFile(filepath.Join(l.dir, name+".pid"), []byte(pid+"\n"), 0o644)
	// What lab-down checks before it signals the PID: the command it runs.
	_ = os.WriteFile(filepath.Join(l.dir, name+".cmd"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644)
	f, err := os.OpenFile(filepath.Join(l.dir, "pids"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	fmt.Fprintln(f, pid)
	f.Close()
}

// ip runs an ip command (namespaces and routes of the lab).
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %v: %v %s", args, err, out)
	}
}

type wfView struct {
	Workflow struct {
		State string `json:"state"`
		Steps []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"steps"`
	} `json:"workflow"`
}

func (l *lab) workflow(id string) (wfView, error) {
	var v wfView
	out, err := l.deckctl("workflow", "describe", id, "-o", "json")
	if err != nil {
		return v, fmt.Errorf("%v: %s", err, out)
	}
	return v, json.Unmarshal([]byte(out), &v)
}

func (l *lab) stepIs(id, step, state string) error {
	v, err := l.workflow(id)
	if err != nil {
		return err
	}
	for _, s := range v.Workflow.Steps {
		if s.Name == step {
			if s.State == state {
				return nil
			}
			return fmt.Errorf("%s is %s", step, s.State)
		}
	}
	return fmt.Errorf("no step %s", step)
}

// leader is the controller that leads; while an election runs (a replica that answers may
// not know the new leader yet) it asks again, up to 30 s.
func (l *lab) leader() string {
	var leader string
	testwait.For(l.t, 30*time.Second, func() error {
		var m struct {
			Members []struct {
				ID     string `json:"id"`
				Leader bool   `json:"leader"`
			} `json:"members"`
		}
		out := l.must("members", "-o", "json")
		_ = json.Unmarshal([]byte(out), &m)
		for _, mem := range m.Members {
			if mem.Leader {
				leader = mem.ID
				return nil
			}
		}
		return fmt.Errorf("no leader: %s", out)
	})
	return leader
}

// TestFaultsOnTheLab runs an apply of 1 control plane and 3 workers on the lab topology
// while the leading controller is SIGKILLed, one agent is partitioned for 10 s in its
// namespace and another agent is killed and restarted in the middle of its kubeadm join;
// then one controller is isolated from the other two (its writes fail cleanly) and heals.
// It ends with every node in the cluster, kubeadm join once per node and no workflow lost.
func TestFaultsOnTheLab(t *testing.T) {
	t.Parallel() // side by side with the real lab of TestRealLab: two labs at once
	if testing.Short() {
		t.Skip("builds and runs the whole lab")
	}
	if os.Getuid() != 0 {
		t.Skip("the fault tests need root for network namespaces")
	}
	dir := filepath.Join(os.TempDir(), "dh-lab-e2e")
	l := &lab{t: t, dir: dir, env: []string{"DECKHAND_LAB_DIR=" + dir, "DECKHAND_LAB_APPLY=0", "DECKHAND_LAB_SIM=1"}}
	t.Cleanup(func() {
		cmd := exec.Command("make", "lab-down")
		cmd.Dir, cmd.Env = "../..", append(os.Environ(), "DECKHAND_LAB_DIR="+dir)
		_ = cmd.Run()
	})
	if out := run(t, 8*time.Minute, l.env, "make", "lab"); !regexp.MustCompile(`network namespaces \S+ on bridge`).MatchString(out) {
		t.Fatalf("the lab did not use network namespaces:\n%s", out)
	}
	l.readEnv()

	// node-3's kubeadm join takes 6 s, so its agent can be killed in the middle of it.
	knob := filepath.Join(dir, "node-3", "root", "var", "lib", "deckhand-sim")
	if err := os.MkdirAll(knob, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(knob, "kubeadm-join-delay"), []byte("6s"), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("cluster-sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc = []byte(strings.ReplaceAll(string(doc), "10.250.0.1:", l.net+".1:"))
	four := strings.Replace(string(doc), "  - {name: node-3, role: worker}\n", "  - {name: node-3, role: worker}\n  - {name: node-4, role: worker}\n", 1)
	four = strings.Replace(four, "concurrency: 2", "concurrency: 3", 1)
	docPath := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(docPath, []byte(four), 0o600); err != nil {
		t.Fatal(err)
	}
	out := l.must("apply", "-f", docPath, "--detach")
	id := strings.TrimSpace(out)

	// 1. SIGKILL the leading controller once the control plane is up.
	testcluster.WaitFor(t, 2*time.Minute, func() error { return l.stepIs(id, "node-1/init", "STEP_STATE_SUCCEEDED") })
	killed := l.leader()
	l.kill(killed)

	// 2. Partition node-2 for 10 s in its namespace.
	l.ip("-n", l.prefix+"-node-2", "link", "set", "eth0", "down")
	healed := make(chan error, 1)
	time.AfterFunc(10*time.Second, func() {
		healed <- exec.Command("ip", "-n", l.prefix+"-node-2", "link", "set", "eth0", "up").Run()
	})

	// 3. Kill node-3's agent in the middle of its kubeadm join, and start it again. The join
	// config exists on the host exactly while the join runs (the emulator takes 6 s).
	joinCfg := filepath.Join(dir, "node-3", "root", "etc", "kubernetes", "deckhand", "kubeadm-join.yaml")
	testcluster.WaitFor(t, 3*time.Minute, func() error {
		if _, err := os.Stat(joinCfg); err != nil {
			return fmt.Errorf("node-3's kubeadm join has not started")
		}
		return nil
	})
	l.kill("node-3")
	l.restart("node-3")

	if err := <-healed; err != nil {
		t.Fatalf("heal node-2's partition: %v", err)
	}

	testcluster.WaitFor(t, 3*time.Minute, func() error {
		v, err := l.workflow(id)
		if err != nil {
			return err
		}
		if v.Workflow.State != "WORKFLOW_STATE_SUCCEEDED" {
			return fmt.Errorf("apply is %s", v.Workflow.State)
		}
		return nil
	})

	// 4. Bring the killed controller back, then isolate another one from its two peers: its
	// writes fail cleanly and it rejoins after.
	l.restart(killed)
	testcluster.WaitFor(t, time.Minute, func() error {
		out, err := l.deckctl("members")
		if err != nil || strings.Count(out, "follower")+strings.Count(out, "leader") < 3 {
			return fmt.Errorf("members: %v %s", err, out)
		}
		return nil
	})
	isolated := "ctl-0"
	if l.leader() == "ctl-0" {
		isolated = "ctl-1"
	}
	isoAddr := l.ctlAddr(isolated)
	var peers []string
	for _, name := range []string{"ctl-0", "ctl-1", "ctl-2"} {
		a := l.ctlAddr(name)
		if name != isolated {
			peers = append(peers, a)
			l.ip("-n", l.prefix+"-"+isolated, "route", "add", "blackhole", a+"/32")
		}
	}
	start := time.Now()
	cmd := exec.Command("../../bin/deckctl", "--timeout", "30s", "--controller", isoAddr+":7400", "token", "create", "--usages", "1")
	cmd.Env = append(os.Environ(), "DECKHAND_CONFIG="+filepath.Join(dir, "ctl-0", "admin.conf"))
	iso, err := cmd.CombinedOutput()
	if err == nil || time.Since(start) > 25*time.Second || strings.Count(strings.TrimSpace(string(iso)), "\n") > 0 {
		t.Fatalf("a write through the isolated controller: err=%v after %v:\n%s", err, time.Since(start), iso)
	}
	for _, a := range peers {
		l.ip("-n", l.prefix+"-"+isolated, "route", "del", "blackhole", a+"/32")
	}
	testcluster.WaitFor(t, time.Minute, func() error {
		cmd := exec.Command("../../bin/deckctl", "--timeout", "5s", "--controller", isoAddr+":7400", "token", "create", "--usages", "1")
		cmd.Env = append(os.Environ(), "DECKHAND_CONFIG="+filepath.Join(dir, "ctl-0", "admin.conf"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("write through the healed controller: %v %s", err, out)
		}
		return nil
	})

	// The end state: every node in the cluster, kubeadm join once per joined node, no
	// workflow lost.
	sim := filepath.Join(dir, "sim-cluster")
	nodes, err := simrecords.Nodes(sim)
	if err != nil || len(nodes) != 4 {
		t.Fatalf("cluster nodes: %v %v", nodes, err)
	}
	recs, err := simrecords.Read(sim)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node-2", "node-3", "node-4"} {
		if c := simrecords.Count(recs, "kubeadm-join", n); c != 1 {
			t.Errorf("kubeadm join ran %d times for %s", c, n)
		}
	}
	if wfs := l.must("workflows"); !strings.Contains(wfs, id) || !strings.Contains(wfs, "succeeded") {
		t.Fatalf("workflows after the faults:\n%s", wfs)
	}
}

package lab_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRealLab runs `make lab` once per iteration and reports what a user waits for and
// what the lab costs: make lab's wall time (the kit already built), init-to-Ready of the
// first control plane and join-to-Ready per worker (from the workflow's kubeadm step start
// to the Node's Ready transition in the real API server), and the resident memory of each
// lab host (every process in its cgroup, containers included) and of the controllers.
// `make bench` runs it; figures go to docs/benchmarks.md.
func BenchmarkRealLab(b *testing.B) {
	if os.Getuid() != 0 {
		b.Fatal("the real lab needs root")
	}
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("dh-lab-bench-%d-%d", os.Getpid(), i))
		env := []string{"DECKHAND_LAB_DIR=" + dir}
		b.Cleanup(func() { // a failed iteration's lab, only this one's
			if _, err := os.Stat(dir); err == nil {
				cmd := exec.Command("../../scripts/lab-down.sh")
				cmd.Env = append(os.Environ(), env...)
				_ = cmd.Run()
			}
		})
		start := time.Now()
		out := run(b, 30*time.Minute, env, "make", "lab")
		wall := time.Since(start)
		l := loadLab(b, dir)
		down := func() { run(b, 3*time.Minute, env, "make", "lab-down") }

		ready := map[string]time.Time{}
		nodes, err := l.kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].lastTransitionTime}{"\n"}{end}`)
		if err != nil {
			down()
			b.Fatal(err, nodes)
		}
		for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
			name, ts, _ := strings.Cut(line, " ")
			if at, err := time.Parse(time.RFC3339, ts); err == nil {
				ready[name] = at
			}
		}
		wfs, err := l.deckctl("workflows", "-o", "json")
		if err != nil {
			down()
			b.Fatal(err, wfs)
		}
		var list struct {
			Workflows []struct {
				ID string `json:"id"`
			} `json:"workflows"`
		}
		json.Unmarshal([]byte(wfs), &list)
		kubeadm := map[string]time.Time{} // node -> start of its kubeadm init/join step
		for _, w := range list.Workflows {
			d, err := l.deckctl("workflow", "describe", w.ID, "-o", "json")
			if err != nil {
				continue
			}
			var v struct {
				Workflow struct {
					Steps []struct {
						Name    string    `json:"name"`
						Node    string    `json:"node"`
						Started time.Time `json:"started"`
					} `json:"steps"`
				} `json:"workflow"`
			}
			json.Unmarshal([]byte(d), &v)
			for _, s := range v.Workflow.Steps {
				if strings.HasSuffix(s.Name, "/init") || strings.HasSuffix(s.Name, "/join") {
					kubeadm[s.Node] = s.Started
				}
			}
		}
		b.ReportMetric(wall.Seconds(), "lab_s")
		var joins []float64
		for node, at := range kubeadm {
			r, ok := ready[node]
			if !ok {
				continue
			}
			if node == "node-1" {
				b.ReportMetric(r.Sub(at).Seconds(), "init_to_ready_s")
			} else {
				joins = append(joins, r.Sub(at).Seconds())
			}
		}
		if len(joins) > 0 {
			sum, most := 0.0, 0.0
			for _, j := range joins {
				sum += j
				most = max(most, j)
			}
			b.ReportMetric(sum/float64(len(joins)), "join_to_ready_mean_s")
			b.ReportMetric(most, "join_to_ready_max_s")
		}
		b.ReportMetric(float64(l.hostRSS("node-1"))/(1<<20), "cp_node_MiB")
		b.ReportMetric(float64(l.hostRSS("node-2"))/(1<<20), "worker_node_MiB")
		total := 0
		for _, n := range []string{"node-1", "node-2", "node-3", "node-4"} {
			total += l.hostRSS(n)
		}
		for _, c := range []string{"ctl-0", "ctl-1", "ctl-2", "labserve"} {
			if p, err := os.ReadFile(filepath.Join(dir, c+".pid")); err == nil {
				total += rss(strings.TrimSpace(string(p)))
			}
		}
		b.ReportMetric(float64(total)/(1<<20), "lab_total_MiB")
		if !strings.Contains(out, "pod to pod: passed") || !strings.Contains(out, "DNS: passed") {
			down()
			b.Fatalf("the lab's checks did not pass:\n%s", out)
		}
		down()
	}
}

// hostRSS sums the resident memory of every process in a lab host's cgroup tree.
func (l *realLab) hostRSS(node string) int {
	total := 0
	filepath.WalkDir("/sys/fs/cgroup/pids/"+l.prefix+"-"+node, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		procs, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(procs)) {
			total += rss(f)
		}
		return nil
	})
	return total
}

// rss is a process's resident set in bytes (VmRSS), 0 when it is gone.
func rss(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb << 10
		}
	}
	return 0
}

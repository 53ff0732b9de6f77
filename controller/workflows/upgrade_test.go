package workflows

import (
	"errors"
	"reflect"
	"testing"
)

func TestDecideUpgrade(t *testing.T) {
	cp := func(name, kubelet, static string) upgradeNode {
		return upgradeNode{Name: name, ControlPlane: true, Kubelet: kubelet, ControlPlaneVersion: static, Connected: true}
	}
	w := func(name, kubelet string) upgradeNode {
		return upgradeNode{Name: name, Kubelet: kubelet, Connected: true}
	}
	off := func(n upgradeNode) upgradeNode { n.Connected = false; return n }
	held := func(n upgradeNode) upgradeNode { n.HeldBy = "wf-7"; return n }
	cluster := []upgradeNode{cp("cp-1", "v1.33.13", "v1.33.13"), cp("cp-2", "v1.33.13", "v1.33.13"),
		w("w-1", "v1.33.13"), w("w-2", "v1.33.13"), w("w-3", "v1.33.13"), w("w-4", "v1.33.13"), w("w-5", "v1.33.13")}
	with := func(i int, n upgradeNode) []upgradeNode {
		out := append([]upgradeNode(nil), cluster...)
		out[i] = n
		return out
	}
	for _, c := range []struct {
		name   string
		s      upgradeState
		want   upgradeDecision
		refuse string
	}{
		{name: "control planes one at a time, then workers one at a time",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}}},
		{name: "batches of two",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "2"},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1", "w-2"}, {"w-3", "w-4"}, {"w-5"}}}},
		{name: "40% of five workers is two",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "40%"},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1", "w-2"}, {"w-3", "w-4"}, {"w-5"}}}},
		{name: "10% of five workers is still one",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "10%"},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}}},
		{name: "a patch release within the minor",
			s:    upgradeState{Cluster: "v1.33.10", Target: "v1.33.13", Nodes: []upgradeNode{cp("cp-1", "v1.33.10", "v1.33.10"), w("w-1", "v1.33.10")}},
			want: upgradeDecision{Target: "v1.33.13", Apply: "cp-1", ControlPlanes: []string{"cp-1"}, Batches: [][]string{{"w-1"}}}},
		{name: "run again after cp-1 and w-2 were upgraded: kubeadm upgrade node on cp-2, w-2 left alone",
			s: upgradeState{Cluster: "v1.34.12", Target: "v1.34.12", Nodes: func() []upgradeNode {
				n := with(0, cp("cp-1", "v1.34.12", "v1.34.12"))
				n[3] = w("w-2", "1.34.12")
				return n
			}()},
			want: upgradeDecision{Target: "v1.34.12", ControlPlanes: []string{"cp-2"}, Batches: [][]string{{"w-1"}, {"w-3"}, {"w-4"}, {"w-5"}}, Done: []string{"cp-1", "w-2"}}},
		{name: "a control plane whose static pods are upgraded but not its kubelet is upgraded again (kubeadm upgrade node finds nothing to do)",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(0, cp("cp-1", "v1.33.13", "v1.34.12"))},
			want: upgradeDecision{Target: "v1.34.12", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}}},
		{name: "everything done: nothing to change",
			s:    upgradeState{Cluster: "v1.34.12", Target: "v1.34.12", Nodes: []upgradeNode{cp("cp-1", "v1.34.12", "v1.34.12"), w("w-1", "v1.34.12")}},
			want: upgradeDecision{Target: "v1.34.12", Done: []string{"cp-1", "w-1"}}},
		{name: "a worker whose agent is down is skipped with --force",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(4, off(w("w-3", "v1.33.13"))), Force: true},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1", "cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-4"}, {"w-5"}}, Skipped: []string{"w-3"}}},
		{name: "the first control plane skipped with --force: apply on the next",
			s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(0, off(cp("cp-1", "v1.33.13", "v1.33.13"))), Force: true},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-2", ControlPlanes: []string{"cp-2"},
				Batches: [][]string{{"w-1"}, {"w-2"}, {"w-3"}, {"w-4"}, {"w-5"}}, Skipped: []string{"cp-1"}}},
		{name: "unknown kubelet versions are upgraded",
			s:    upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: []upgradeNode{cp("cp-1", "", ""), w("w-1", "")}},
			want: upgradeDecision{Target: "v1.34.12", Apply: "cp-1", ControlPlanes: []string{"cp-1"}, Batches: [][]string{{"w-1"}}}},

		{name: "downgrade", s: upgradeState{Cluster: "v1.34.12", Target: "v1.33.13", Nodes: cluster}, refuse: RuleNoDowngrade},
		{name: "a patch downgrade", s: upgradeState{Cluster: "v1.33.13", Target: "v1.33.3", Nodes: cluster}, refuse: RuleNoDowngrade},
		{name: "two minors", s: upgradeState{Cluster: "v1.32.13", Target: "v1.34.12", Nodes: cluster}, refuse: RuleOneMinor},
		{name: "unsupported target", s: upgradeState{Cluster: "v1.33.13", Target: "v1.40.0", Nodes: cluster}, refuse: RuleVersion},
		{name: "not a version", s: upgradeState{Cluster: "v1.33.13", Target: "latest", Nodes: cluster}, refuse: RuleVersion},
		{name: "a kubelet newer than the target", s: upgradeState{Cluster: "v1.33.10", Target: "v1.33.12", Nodes: with(3, w("w-2", "v1.33.13"))}, refuse: RuleKubeletNotNewer},
		{name: "a kubelet four minors behind", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(3, w("w-2", "v1.30.14"))}, refuse: RuleKubeletSkew},
		{name: "a kubelet older than any supported", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(3, w("w-2", "v1.27.3"))}, refuse: RuleKubeletSkew},
		{name: "an agent down without --force", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(4, off(w("w-3", "v1.33.13")))}, refuse: RuleConnected},
		{name: "every control plane down, with --force", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Force: true,
			Nodes: []upgradeNode{off(cp("cp-1", "v1.33.13", "v1.33.13")), w("w-1", "v1.33.13")}}, refuse: RuleConnected},
		{name: "a node held, even with --force", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: with(2, held(w("w-1", "v1.33.13"))), Force: true}, refuse: RuleNotHeld},
		{name: "max-unavailable zero", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "0"}, refuse: RuleMaxUnavailable},
		{name: "max-unavailable 0%", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "0%"}, refuse: RuleMaxUnavailable},
		{name: "max-unavailable 150%", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "150%"}, refuse: RuleMaxUnavailable},
		{name: "max-unavailable words", s: upgradeState{Cluster: "v1.33.13", Target: "v1.34.12", Nodes: cluster, MaxUnavailable: "half"}, refuse: RuleMaxUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decideUpgrade(c.s)
			if c.refuse != "" {
				var r *UpgradeRefusal
				if !errors.As(err, &r) || r.Rule != c.refuse {
					t.Fatalf("decideUpgrade = %+v, %v; want a refusal by rule %s", got, err, c.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("decideUpgrade =\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

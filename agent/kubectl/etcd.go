package kubectl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// etcdctlFlags reach the control plane's own stacked etcd member from inside its etcd pod,
// with the health-check client certificate kubeadm makes for this (and mounts there), as
// kubeadm's documentation does it.
var etcdctlFlags = []string{
	"--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
	"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
}

// etcdctl runs etcdctl in node's etcd pod (the static pod etcd-NODE).
func etcdctl(node string, args ...string) []string {
	a := append([]string{"-n", "kube-system", "exec", "etcd-" + node, "-c", "etcd", "--", "etcdctl"}, etcdctlFlags...)
	return argv(append(a, args...)...)
}

// EtcdMember is one member of etcdctl member list -w json.
type EtcdMember struct {
	ID       uint64   `json:"ID"`
	Name     string   `json:"name"`
	PeerURLs []string `json:"peerURLs"`
	Learner  bool     `json:"isLearner"`
}

// ParseEtcdMembers reads etcdctl member list -w json.
func ParseEtcdMembers(out []byte) ([]EtcdMember, error) {
	var v struct {
		Members []EtcdMember `json:"members"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("etcdctl member list -w json: %w", err)
	}
	if len(v.Members) == 0 {
		return nil, fmt.Errorf("etcdctl member list -w json: no members (not etcdctl's answer)")
	}
	return v.Members, nil
}

// memberNames are the members' names, sorted; a member that never started has none, and
// is shown by its ID.
func memberNames(ms []EtcdMember) []string {
	var out []string
	for _, m := range ms {
		if m.Name == "" {
			out = append(out, "(unstarted "+strconv.FormatUint(m.ID, 16)+")")
			continue
		}
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

// named are the members of node name: called name, or never started (no name yet) with a
// peer URL on the node's address.
func named(ms []EtcdMember, name, address string) []EtcdMember {
	var out []EtcdMember
	for _, m := range ms {
		switch {
		case name != "" && m.Name == name:
			out = append(out, m)
		case m.Name == "" && address != "" && slices.ContainsFunc(m.PeerURLs, func(u string) bool { return peerHost(u) == address }):
			out = append(out, m)
		}
	}
	return out
}

// peerHost is the host of an etcd peer URL (https://10.0.0.2:2380, https://[fd00::2]:2380).
func peerHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

// EtcdMembers lists the stacked etcd cluster's members through this control plane's etcd,
// and removes the member named spec.absent if it is still there (kubeadm reset removes a
// control plane's own member, but not when it could not reach the cluster).
func EtcdMembers(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	absent, address := t.GetSpec().GetEtcdMembers().GetAbsent(), t.GetSpec().GetEtcdMembers().GetAbsentAddress()
	if absent != "" && (len(absent) > 63 || !labelRE.MatchString(absent)) {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give the node's name as Kubernetes knows it", "absent %q is not an RFC 1123 label", absent)
	}
	if _, err := netip.ParseAddr(address); address != "" && err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give the node's IP address", "absent_address %q is not an IP address", address)
	}
	if err := check(h, "etcd_members", t.GetNode()); err != nil {
		return nil, err
	}
	if h.DryRun {
		// The reset before it is a dry run too: the member is still there, and stays.
		e.Logf("would check that %s is no member of the etcd cluster (removing it if kubeadm reset left it), through etcd-%s", absent, t.GetNode())
		return nil, nil
	}
	list := func() ([]EtcdMember, error) {
		out, err := h.Query(ctx, etcdctl(t.GetNode(), "member", "list", "-w", "json")...)
		if err != nil {
			return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check this control plane's etcd pod (kubectl -n kube-system get pod etcd-"+t.GetNode()+"; crictl ps --name etcd)", "list the etcd members through etcd-%s: %s", t.GetNode(), message(err))
		}
		ms, err := ParseEtcdMembers(out)
		if err != nil {
			return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check this control plane's etcd", "%v", err)
		}
		return ms, nil
	}
	ms, err := list()
	if err != nil {
		return nil, err
	}
	removed := []string{}
	for _, m := range named(ms, absent, address) {
		id := strconv.FormatUint(m.ID, 16)
		e.Logf("etcd member %s (%s) of %s is still in the cluster: removing it", id, strings.Join(m.PeerURLs, ","), absent)
		if err := h.Run(ctx, "remove etcd member "+absent, etcdctl(t.GetNode(), "member", "remove", id)...); err != nil {
			return nil, tasks.Errorf("ETCD_MEMBER_REMOVE_FAILED", "remove it by hand: kubectl -n kube-system exec etcd-"+t.GetNode()+" -- etcdctl ... member remove "+id, "remove etcd member %s of %s: %s", id, absent, message(err))
		}
		removed = append(removed, absent)
	}
	if len(removed) > 0 {
		if ms, err = list(); err != nil {
			return nil, err
		}
		if left := named(ms, absent, address); len(left) > 0 {
			return nil, tasks.Errorf("ETCD_MEMBER_REMOVE_FAILED", "look at etcd's log on "+t.GetNode(), "etcd member %s of %s is still listed after its removal", strconv.FormatUint(left[0].ID, 16), absent)
		}
	}
	names := memberNames(ms)
	if absent != "" {
		e.Logf("etcd members: %s (%s is not one)", strings.Join(names, ", "), absent)
	} else {
		e.Logf("etcd members: %s", strings.Join(names, ", "))
	}
	return map[string]string{"members": strings.Join(names, ","), "removed": strings.Join(removed, ",")}, nil
}

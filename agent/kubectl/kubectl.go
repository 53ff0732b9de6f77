package kubectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	// AdminConf is the kubeconfig kubectl runs with: only a control plane has it.
	AdminConf = "/etc/kubernetes/admin.conf"
	// DefaultDrainTimeout bounds a drain whose spec gives no timeout.
	DefaultDrainTimeout = 5 * time.Minute
	// DefaultReadyTimeout bounds a node_ready wait whose spec gives no timeout.
	DefaultReadyTimeout = 5 * time.Minute

	// pollEvery is how often node_ready asks for the node's status.
	pollEvery = 500 * time.Millisecond
)

var labelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// check validates the node name and that this node can run kubectl against the cluster.
func check(h *host.Host, kind, name string) error {
	if len(name) > 63 || !labelRE.MatchString(name) {
		return tasks.Errorf("INVALID_ARGUMENT", "give the node's name as Kubernetes knows it", "node_name %q is not an RFC 1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", name)
	}
	return controlPlane(h, kind)
}

// controlPlane checks that this node can run kubectl against the cluster: it has admin.conf.
func controlPlane(h *host.Host, kind string) error {
	if !h.Exists(AdminConf) {
		return tasks.Errorf("NOT_A_CONTROL_PLANE", "run the "+kind+" task on a healthy control-plane node", "%s is missing: this node is not an initialized control plane", AdminConf)
	}
	return nil
}

func argv(args ...string) []string {
	return append([]string{"kubectl", "--kubeconfig", AdminConf}, args...)
}

// notFound reports whether kubectl failed because the Node object does not exist.
func notFound(err error, name string) bool {
	var ce *host.CommandError
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, fmt.Sprintf("(NotFound): nodes %q not found", name))
}

// message is what kubectl said about a failure: its error lines, each once (a drain
// repeats its eviction error every 5 seconds), or the whole error when it printed none.
func message(err error) string {
	var ce *host.CommandError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	var lines []string
	seen := map[string]bool{}
	for _, l := range strings.Split(ce.Stderr, "\n") {
		l = strings.TrimSpace(l)
		if !seen[l] && (strings.HasPrefix(strings.ToLower(l), "error") || strings.HasPrefix(l, "The connection to the server")) {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return err.Error()
	}
	return strings.Join(lines, "; ")
}

// Drain cordons the node, then evicts its pods (DaemonSet pods stay; emptyDir data goes).
// A node that does not exist is already drained: the output says absent.
func Drain(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetDrain()
	name := spec.GetNodeName()
	if err := check(h, "drain", name); err != nil {
		return nil, err
	}
	timeout := spec.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = DefaultDrainTimeout
	}
	if spec.GetUncordon() {
		return uncordon(ctx, h, e, name)
	}
	const hint = "let the pods that block it be evicted (a PodDisruptionBudget that allows a disruption, more replicas elsewhere) and drain again, or reset the node with --force to remove it without a clean drain"
	absent := func() (map[string]string, error) {
		e.Logf("node %s does not exist: nothing to drain", name)
		return map[string]string{"absent": "true"}, nil
	}
	// A node an operator cordoned before stays cordoned after an upgrade: Deckhand marks
	// the nodes it cordons itself, and its uncordon lets pods back onto those only.
	for attempt := 1; ; attempt++ {
		v, err := getNodePast(ctx, h, e, name)
		if notFound(err, name) {
			return absent()
		}
		if err != nil {
			return nil, tasks.Errorf("DRAIN_FAILED", "check the control plane's health (kubectl get --raw=/readyz on it)", "%v", err)
		}
		if v.Unschedulable {
			if !v.CordonedByDeckhand {
				e.Logf("node %s was cordoned before this drain, not by Deckhand: it stays cordoned afterwards", name)
			}
			break
		}
		err = patchCordonPast(ctx, h, e, name, v.ResourceVersion, true)
		if notFound(err, name) {
			return absent()
		}
		if conflict(err) && attempt < maxPatchAttempts {
			continue // the Node changed since it was read: read it again
		}
		if err != nil {
			return nil, tasks.Errorf("DRAIN_FAILED", "check the control plane's health and that admin.conf may patch Nodes", "cordon %s: %s", name, message(err))
		}
		break
	}
	args := argv("drain", name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout="+timeout.String())
	if spec.GetForce() {
		args = append(args, "--force")
	}
	if !h.DryRun {
		if err := waitControllerManager(ctx, h, e); err != nil {
			return nil, err
		}
	}
	e.Logf("draining node %s (timeout %v)", name, timeout)
	if err := runPastForbidden(ctx, h, e, "evict the pods of node "+name, args); err != nil {
		if notFound(err, name) {
			return absent()
		}
		return nil, tasks.Errorf("DRAIN_FAILED", hint, "drain %s: %s", name, message(err))
	}
	if h.DryRun {
		return nil, nil
	}
	return map[string]string{"drained": name}, nil
}

// forbiddenRetries and forbiddenWait bound the retries of a command the API refused as
// Forbidden: admin.conf's user is a cluster admin, so that answer comes from an API server
// that has just started (through the load balancer) and not yet loaded its RBAC objects.
const (
	forbiddenRetries = 6
	forbiddenWait    = 5 * time.Second
)

// pastForbidden runs an idempotent kubectl request, again while the API answers Forbidden
// (see forbiddenRetries): the node's read, the cordon's patch and the drain alike.
func pastForbidden[T any](ctx context.Context, e *tasks.Emitter, f func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || attempt > forbiddenRetries || !strings.Contains(message(err), "(Forbidden)") {
			return v, err
		}
		e.Logf("the API server answered Forbidden (one that just started, its RBAC not loaded yet): again in %v (%d/%d)", forbiddenWait, attempt, forbiddenRetries)
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(forbiddenWait):
		}
	}
}

// runPastForbidden runs an idempotent kubectl command through pastForbidden.
func runPastForbidden(ctx context.Context, h *host.Host, e *tasks.Emitter, what string, args []string) error {
	_, err := pastForbidden(ctx, e, func() (struct{}, error) { return struct{}{}, h.Run(ctx, what, args...) })
	return err
}

// getNodePast and patchCordonPast are getNode and patchCordon through pastForbidden.
func getNodePast(ctx context.Context, h *host.Host, e *tasks.Emitter, name string) (NodeView, error) {
	return pastForbidden(ctx, e, func() (NodeView, error) { return getNode(ctx, h, name) })
}

func patchCordonPast(ctx context.Context, h *host.Host, e *tasks.Emitter, name, resourceVersion string, cordon bool) error {
	_, err := pastForbidden(ctx, e, func() (struct{}, error) {
		return struct{}{}, patchCordon(ctx, h, name, resourceVersion, cordon)
	})
	return err
}

// uncordon lets pods be scheduled on a node again (after its upgrade); a node that is not
// cordoned is left as it is.
func uncordon(ctx context.Context, h *host.Host, e *tasks.Emitter, name string) (map[string]string, error) {
	for attempt := 1; ; attempt++ {
		v, err := getNodePast(ctx, h, e, name)
		if notFound(err, name) {
			return nil, tasks.Errorf("NODE_NOT_FOUND", "check that the node is still part of the cluster (kubectl get nodes)", "node %s does not exist", name)
		}
		if err != nil {
			return nil, tasks.Errorf("UNCORDON_FAILED", "check the control plane's health (kubectl get --raw=/readyz on it)", "%v", err)
		}
		switch {
		case v.Unschedulable && !v.CordonedByDeckhand:
			e.Logf("node %s was cordoned before Deckhand drained it (it has no %s annotation): it stays cordoned; kubectl uncordon %s lets pods onto it", name, CordonedAnnotation, name)
			return map[string]string{"left_cordoned": name}, nil
		case !v.Unschedulable && !v.CordonedByDeckhand:
			e.Logf("node %s is not cordoned", name)
			return map[string]string{"uncordoned": name}, nil
		}
		// Cordoned by Deckhand (or its mark left on a node uncordoned since): uncordoned
		// and unmarked in one request.
		err = patchCordonPast(ctx, h, e, name, v.ResourceVersion, false)
		if conflict(err) && attempt < maxPatchAttempts {
			continue
		}
		if err != nil {
			return nil, tasks.Errorf("UNCORDON_FAILED", "uncordon it by hand: kubectl uncordon "+name+"; kubectl annotate node "+name+" "+CordonedAnnotation+"-", "uncordon %s: %s", name, message(err))
		}
		return map[string]string{"uncordoned": name}, nil
	}
}

// maxPatchAttempts bounds the reads and patches of a Node that keeps changing meanwhile.
const maxPatchAttempts = 5

// getNode reads the Node object.
func getNode(ctx context.Context, h *host.Host, name string) (NodeView, error) {
	out, err := h.QueryQuiet(ctx, argv("get", "node", name, "-o", "json")...)
	if err != nil {
		if notFound(err, name) {
			return NodeView{}, err
		}
		return NodeView{}, fmt.Errorf("get node %s: %s", name, message(err))
	}
	return ParseNode(out)
}

// patchCordon cordons the node and sets Deckhand's mark (cordon), or uncordons it and
// removes the mark, in one merge patch that the API server applies only to the Node's
// resourceVersion as read: both or neither, and never over a change made meanwhile.
func patchCordon(ctx context.Context, h *host.Host, name, resourceVersion string, cordon bool) error {
	mark := any(nil)
	what := "uncordon node " + name + " and remove Deckhand's mark"
	if cordon {
		mark, what = "drain", "cordon node "+name+" and mark it as cordoned by Deckhand"
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion, "annotations": map[string]any{CordonedAnnotation: mark}},
		"spec":     map[string]any{"unschedulable": cordon},
	})
	return h.Run(ctx, what, argv("patch", "node", name, "--type=merge", "-p", string(patch))...)
}

// conflict reports whether a patch failed because the object changed since it was read.
func conflict(err error) bool {
	var ce *host.CommandError
	return errors.As(err, &ce) && (strings.Contains(ce.Stderr, "(Conflict)") || strings.Contains(ce.Stderr, "the object has been modified"))
}

// CordonedAnnotation marks a Node that Deckhand cordoned for a drain (set with the cordon,
// removed with the uncordon, in one request each): an uncordon lets pods back onto such a
// node only, never onto one an operator cordoned. Remove it by hand (kubectl annotate node
// NAME deckhand.dev/cordoned-) from a node you uncordoned yourself after a failed drain and
// mean to cordon.
const CordonedAnnotation = "deckhand.dev/cordoned"

// DeleteNode deletes the Node object; one already gone is not an error.
func DeleteNode(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	name := t.GetSpec().GetDeleteNode().GetNodeName()
	if err := check(h, "delete_node", name); err != nil {
		return nil, err
	}
	if err := runPastForbidden(ctx, h, e, "delete the Node object "+name, argv("delete", "node", name, "--ignore-not-found")); err != nil {
		return nil, tasks.Errorf("DELETE_NODE_FAILED", "check the control plane's health (kubectl get --raw=/readyz on it)", "delete node %s: %s", name, message(err))
	}
	if h.DryRun {
		return nil, nil
	}
	return map[string]string{"deleted": name}, nil
}

// node is the part of a Node object node_ready reads (kubectl get node NAME -o json).
type node struct {
	Metadata struct {
		Name            string            `json:"name"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR       string `json:"podCIDR"`
		Unschedulable bool   `json:"unschedulable"`
	} `json:"spec"`
	Status struct {
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		NodeInfo struct {
			KubeletVersion string `json:"kubeletVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

// NodeView is what Deckhand reads of a Node object: its name, whether it carries the
// control-plane role label (kubeadm's mark-control-plane phase sets it), its Ready
// condition's status ("" when it reports none), its spec.podCIDR, its InternalIP and its
// kubelet's version.
type NodeView struct {
	Name                    string
	ControlPlane            bool
	Ready, PodCIDR, Address string
	KubeletVersion          string
	// Unschedulable: cordoned.
	Unschedulable bool
	// CordonedByDeckhand: the node carries CordonedAnnotation.
	CordonedByDeckhand bool
	// ResourceVersion is the object's version as read.
	ResourceVersion string
}

// ControlPlaneLabel is the label kubeadm puts on a control-plane Node.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// ParseNode reads the output of kubectl get node NAME -o json.
func ParseNode(out []byte) (NodeView, error) {
	var n node
	if err := json.Unmarshal(out, &n); err != nil {
		return NodeView{}, fmt.Errorf("kubectl get node -o json: not a Node object: %w", err)
	}
	v := NodeView{Name: n.Metadata.Name, ResourceVersion: n.Metadata.ResourceVersion, PodCIDR: n.Spec.PodCIDR, KubeletVersion: n.Status.NodeInfo.KubeletVersion, Unschedulable: n.Spec.Unschedulable}
	_, v.ControlPlane = n.Metadata.Labels[ControlPlaneLabel]
	_, v.CordonedByDeckhand = n.Metadata.Annotations[CordonedAnnotation]
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			v.Ready = c.Status
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" && v.Address == "" {
			v.Address = a.Address
		}
	}
	return v, nil
}

// waitDone says whether the node is as far as the wait asks (and its kubelet at kubelet,
// when set), and if not, why.
func waitDone(v NodeView, registered bool, kubelet string) (bool, string) {
	switch {
	case kubelet != "" && v.KubeletVersion != kubelet:
		return false, fmt.Sprintf("its kubelet reports %s, not %s yet", or(v.KubeletVersion, "no version"), kubelet)
	case registered && v.PodCIDR == "":
		return false, "it has no spec.podCIDR yet (kube-controller-manager assigns one when the cluster has a pod subnet: spec.networking.podSubnet)"
	case registered && v.Address == "":
		return false, "it reports no InternalIP yet"
	case registered:
		return true, ""
	case v.Ready == "True":
		return true, ""
	case v.Ready == "":
		return false, "the node reports no Ready condition yet"
	}
	return false, fmt.Sprintf("Ready is %s", v.Ready)
}

// NodeReady waits until the node's Ready condition is True, or with wait REGISTERED until
// the Node exists with a podCIDR and an InternalIP. Its outputs name the node's pod_cidr and
// address. A dry-run does not wait.
func NodeReady(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetNodeReady()
	name := spec.GetNodeName()
	timeout := spec.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	registered := spec.GetWait() == taskv1.NodeWait_NODE_WAIT_REGISTERED
	what := "Ready"
	if registered {
		what = "registered with a podCIDR"
	}
	if v := spec.GetKubeletVersion(); v != "" {
		what += " with kubelet " + v
	}
	if err := check(h, "node_ready", name); err != nil {
		var te *tasks.Error
		if !h.DryRun || !errors.As(err, &te) || te.Reason != "NOT_A_CONTROL_PLANE" {
			return nil, err
		}
		// A dry-run of an init: the node is a control plane once the init really ran.
	}
	if h.DryRun {
		e.Logf("would wait up to %v for node %s to be %s", timeout, name, what)
		return nil, nil
	}
	e.Logf("waiting up to %v for node %s to be %s", timeout, name, what)
	start := time.Now()
	deadline := start.Add(timeout)
	last, lastLogged := "", time.Time{}
	for {
		out, err := h.QueryQuiet(ctx, argv("get", "node", name, "-o", "json")...)
		var now string
		if err == nil {
			var v NodeView
			if v, err = ParseNode(out); err == nil {
				done, why := waitDone(v, registered, spec.GetKubeletVersion())
				if done {
					e.Logf("node %s is %s (after %v): podCIDR %s, InternalIP %s", name, what, time.Since(start).Round(time.Second), or(v.PodCIDR, "none"), or(v.Address, "none"))
					outs := map[string]string{"pod_cidr": v.PodCIDR, "address": v.Address}
					if registered {
						outs["registered"] = name
					} else {
						outs["ready"] = name
					}
					for k, val := range outs {
						if val == "" {
							delete(outs, k)
						}
					}
					return outs, nil
				}
				now = why
			}
		}
		if err != nil {
			now = message(err)
		}
		if now != last || time.Since(lastLogged) >= 30*time.Second {
			e.Logf("node %s is not %s yet: %s", name, what, now)
			last, lastLogged = now, time.Now()
		}
		if time.Now().After(deadline) {
			return nil, tasks.Errorf("NODE_NOT_READY", fmt.Sprintf("look at the kubelet on %s: deckctl task run %s diagnostics", name, name), "node %s is not %s after %v: %s", name, what, timeout, now)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for node %s to be %s: %w (last: %s)", name, what, ctx.Err(), now)
		case <-time.After(pollEvery):
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ControllerManagerWait bounds the wait for a kube-controller-manager that holds its lease.
const ControllerManagerWait = 2 * time.Minute

// waitControllerManager waits until a kube-controller-manager holds its leader lease
// (kube-system/kube-controller-manager renewed within its duration): its endpoints
// controller takes an evicted pod out of its Services. Right after a control plane's
// upgrade or restart the lease can lapse for its 15 seconds; evicting then leaves the
// Services sending to pods that are gone (clients see "no route to host") until a new
// leader syncs.
func waitControllerManager(ctx context.Context, h *host.Host, e *tasks.Emitter) error {
	start := time.Now()
	said := false
	var last, firstRenew string
	for {
		out, err := pastForbidden(ctx, e, func() ([]byte, error) {
			return h.QueryQuiet(ctx, argv("-n", "kube-system", "get", "lease", "kube-controller-manager", "-o", "json")...)
		})
		if err == nil {
			held, why := LeaseHeld(out, time.Now())
			// A holder seen renewing it is alive whatever the clocks say: this node's and
			// the controller manager's may differ by more than the lease's 15 seconds.
			if renew := leaseRenewTime(out); renew != "" && firstRenew != "" && renew != firstRenew {
				held = true
			} else if firstRenew == "" {
				firstRenew = renew
			}
			if held {
				if said {
					e.Logf("kube-controller-manager holds its lease again (after %v)", time.Since(start).Round(100*time.Millisecond))
				}
				return nil
			}
			last = why
		} else {
			last = message(err)
		}
		if !said {
			e.Logf("waiting for a kube-controller-manager that holds its lease before evicting pods: %s", last)
			said = true
		}
		if time.Since(start) > ControllerManagerWait {
			return tasks.Errorf("DRAIN_FAILED", "check the control planes' kube-controller-manager pods (kubectl -n kube-system get pods, and their logs); nothing was evicted",
				"no kube-controller-manager held its lease within %v (%s): its endpoints controller would not take evicted pods out of their Services", ControllerManagerWait, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// LeaseHeld says whether a coordination.k8s.io Lease (kubectl get lease -o json) has a
// holder that renewed it within its duration at now, and if not, why.
func LeaseHeld(out []byte, now time.Time) (bool, string) {
	var l struct {
		Spec struct {
			HolderIdentity       string `json:"holderIdentity"`
			LeaseDurationSeconds int    `json:"leaseDurationSeconds"`
			RenewTime            string `json:"renewTime"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		return false, "not a Lease: " + err.Error()
	}
	if l.Spec.HolderIdentity == "" {
		return false, "the lease has no holder"
	}
	renewed, err := time.Parse(time.RFC3339Nano, l.Spec.RenewTime)
	if err != nil {
		return false, fmt.Sprintf("the lease's renewTime %q does not parse", l.Spec.RenewTime)
	}
	d := time.Duration(l.Spec.LeaseDurationSeconds) * time.Second
	if age := now.Sub(renewed); age > d {
		return false, fmt.Sprintf("%s last renewed it %v ago, longer than its %v", l.Spec.HolderIdentity, age.Round(time.Second), d)
	}
	return true, ""
}

// leaseRenewTime is a held Lease's renewTime as written, "" when it has no holder.
func leaseRenewTime(out []byte) string {
	var l struct {
		Spec struct {
			HolderIdentity string `json:"holderIdentity"`
			RenewTime      string `json:"renewTime"`
		} `json:"spec"`
	}
	if json.Unmarshal(out, &l) != nil || l.Spec.HolderIdentity == "" {
		return ""
	}
	return l.Spec.RenewTime
}

// Package taskkinds declares, once, each kind of task the agent runs (a field of the
// TaskSpec oneof in proto/deckhand/task/v1): what it does, how long it may run as a workflow
// step, whether its success may change the host's facts, and the outputs it reports (and
// which of them are secrets). The controller's plans and engine, the agent and the secret
// handling read this table; an exhaustiveness test holds it to the proto, and the agent's
// tests hold its handlers to it. Nothing else switches on a kind's name.
package taskkinds

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Kind is one kind of task.
type Kind struct {
	// Name is the TaskSpec oneof field: "kubeadm_join".
	Name string
	// Summary says what the task does, for people.
	Summary string
	// StepTimeout bounds the task as a workflow step; a step not done by then is cancelled
	// and retried.
	StepTimeout time.Duration
	// ChangesFacts: a success may change the host's facts (installed versions, runtime,
	// cluster membership), so the agent collects them again.
	ChangesFacts bool
	// Outputs are the names of the outputs a success reports; Secret those among them that
	// carry secrets (never in step records, logs or a viewer's view).
	Outputs []string
	Secret  []string
}

var kinds = []Kind{
	{Name: "preflight", Summary: "host checks kubeadm needs, with fixes", StepTimeout: 5 * time.Minute},
	{Name: "packages", Summary: "install kubelet, kubeadm and kubectl", StepTimeout: 15 * time.Minute, ChangesFacts: true},
	{Name: "runtime", Summary: "install and configure containerd, runc and the CNI plugins", StepTimeout: 15 * time.Minute, ChangesFacts: true,
		Outputs: []string{"sandbox_image", "cgroup_driver", "runtime_name", "runtime_version", "runtime_ready", "network_ready"}},
	{Name: "images", Summary: "pull, list, remove, export or import container images", StepTimeout: 30 * time.Minute,
		Outputs: []string{"images", "pulled_bytes", "count", "archive"}},
	{Name: "kubeadm_init", Summary: "kubeadm init on the first control plane", StepTimeout: 15 * time.Minute, ChangesFacts: true,
		Outputs: []string{"ca_cert_hash", "control_plane_endpoint", "token", "certificate_key", "api_server"}, Secret: []string{"token", "certificate_key"}},
	{Name: "kubeadm_token", Summary: "mint a join token (and upload control-plane certificates), or delete one", StepTimeout: 5 * time.Minute,
		Outputs: []string{"token", "ca_cert_hash", "api_server", "certificate_key", "deleted"}, Secret: []string{"token", "certificate_key"}},
	{Name: "kubeadm_join", Summary: "kubeadm join as a worker or a control plane", StepTimeout: 15 * time.Minute, ChangesFacts: true,
		Outputs: []string{"joined"}},
	{Name: "kubeadm_reset", Summary: "kubeadm reset and clean what it leaves", StepTimeout: 10 * time.Minute, ChangesFacts: true,
		Outputs: []string{"leftovers"}},
	{Name: "drain", Summary: "cordon and drain a node (or uncordon it), from a control plane", StepTimeout: 10 * time.Minute, Outputs: []string{"drained", "absent", "uncordoned", "left_cordoned"}},
	{Name: "delete_node", Summary: "delete a Node object, from a control plane", StepTimeout: 5 * time.Minute, Outputs: []string{"deleted"}},
	{Name: "diagnostics", Summary: "collect a diagnostics bundle", StepTimeout: 5 * time.Minute, Outputs: []string{"files", "bytes"}},
	{Name: "ping", Summary: "answer: a round trip to the agent that changes nothing on the host", StepTimeout: time.Minute,
		Outputs: []string{"agent_version", "agent_time"}},
	{Name: "facts", Summary: "collect the host's facts now and report them", StepTimeout: 2 * time.Minute, ChangesFacts: true,
		Outputs: []string{"hostname", "os", "kernel", "runtime", "kubelet", "cpus", "addresses"}},
	{Name: "node_ready", Summary: "wait until a node is registered or Ready, from a control plane", StepTimeout: 10 * time.Minute,
		Outputs: []string{"pod_cidr", "address"}},
	{Name: "kubeconfig_sign", Summary: "sign a Kubernetes user certificate with the cluster CA", StepTimeout: time.Minute,
		Outputs: []string{"certificate", "ca", "server", "expires"}},
	{Name: "network", Summary: "the pod network on a node: CNI configuration and routes", StepTimeout: 5 * time.Minute, Outputs: []string{"pod_cidr"}},
	{Name: "etcd_members", Summary: "list the stacked etcd's members and remove a reset node's", StepTimeout: 3 * time.Minute,
		Outputs: []string{"members", "removed"}},
	{Name: "load_balancer", Summary: "the API servers' load balancer on a node: haproxy, and keepalived for a virtual IP", StepTimeout: 10 * time.Minute,
		Outputs: []string{"endpoint", "backends"}},
	{Name: "manifest", Summary: "apply Kubernetes objects with kubectl and wait for their rollouts, from a control plane", StepTimeout: 10 * time.Minute,
		Outputs: []string{"objects", "workloads"}},
	{Name: "kubeadm_upgrade", Summary: "kubeadm upgrade apply on the first control plane, kubeadm upgrade node on the others", StepTimeout: 20 * time.Minute, ChangesFacts: true,
		Outputs: []string{"upgraded"}},
	{Name: "certs_renew", Summary: "renew a control plane's kubeadm certificates and restart its static pods", StepTimeout: 20 * time.Minute, ChangesFacts: true,
		Outputs: []string{"renewed", "expires"}},
	{Name: "etcd_snapshot", Summary: "take an etcd snapshot through a control plane's member and keep it there", StepTimeout: 30 * time.Minute, ChangesFacts: true,
		Outputs: []string{"name", "path", "sha256", "size", "revision"}},
	{Name: "etcd_restore", Summary: "one phase of an etcd restore: check, stop, restore or re-join", StepTimeout: 20 * time.Minute, ChangesFacts: true,
		Outputs: []string{"healthy", "restored", "rejoined"}},
	{Name: "cluster_health", Summary: "check the API server, every node's readiness and every etcd member, from a control plane", StepTimeout: 3 * time.Minute,
		Outputs: []string{"nodes", "members"}},
}

// MaxHealthNodes bounds the nodes a cluster_health task checks (a cluster's nodes).
const MaxHealthNodes = 10000

// All returns every kind, in declaration order.
func All() []Kind { return slices.Clone(kinds) }

// Get returns the kind called name.
func Get(name string) (Kind, bool) {
	i := slices.IndexFunc(kinds, func(k Kind) bool { return k.Name == name })
	if i < 0 {
		return Kind{}, false
	}
	return kinds[i], true
}

// Of names the kind of a task spec ("" when none is set).
func Of(s *taskv1.TaskSpec) string {
	if s == nil {
		return ""
	}
	fd := s.ProtoReflect().WhichOneof(oneof())
	if fd == nil {
		return ""
	}
	return string(fd.Name())
}

// Wrap makes a TaskSpec of a kind's message (a *taskv1.JoinSpec and so on).
func Wrap(m proto.Message) (*taskv1.TaskSpec, error) {
	s := &taskv1.TaskSpec{}
	fields := oneof().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() != nil && fd.Message().FullName() == m.ProtoReflect().Descriptor().FullName() {
			s.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(m.ProtoReflect()))
			return s, nil
		}
	}
	return nil, fmt.Errorf("taskkinds: %T is no task kind", m)
}

// SecretOutput reports whether an output of that name carries a secret in any kind.
func SecretOutput(name string) bool {
	for _, k := range kinds {
		if slices.Contains(k.Secret, name) {
			return true
		}
	}
	return false
}

func oneof() protoreflect.OneofDescriptor {
	return (&taskv1.TaskSpec{}).ProtoReflect().Descriptor().Oneofs().ByName("kind")
}

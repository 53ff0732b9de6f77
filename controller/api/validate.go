package api

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/fanout"
	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/clusterspec"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/kubeuser"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// fieldError names the request field that is wrong and how to fix it.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func required(field, value, hint string) error {
	if strings.TrimSpace(value) == "" {
		return &fieldError{field, "is required: " + hint}
	}
	return nil
}

func nodeName(field, value string) error {
	if err := nodes.ValidateName(value); err != nil {
		return &fieldError{field, fmt.Sprintf("%q is not a valid node name: use an RFC 1123 label (lower-case letters, digits, '-', at most 63)", value)}
	}
	return nil
}

// validate checks a request at the edge, before any handler runs.
func validate(req any) error {
	switch r := req.(type) {
	case *apiv1.ListAuditEventsRequest:
		return auditFilter(r.GetWho(), r.GetNode())
	case *apiv1.WatchAuditEventsRequest:
		return auditFilter(r.GetWho(), r.GetNode())
	case *apiv1.GetNodeRequest:
		return nodeName("name", r.GetName())
	case *apiv1.DeleteNodeRequest:
		return nodeName("name", r.GetName())
	case *apiv1.RevokeTokenRequest:
		return required("id", r.GetId(), "give the token ID shown by deckctl token list")
	case *apiv1.CreateTokenRequest:
		if d := r.GetTtl(); d != nil && (d.AsDuration() < 0 || !d.IsValid()) {
			return &fieldError{"ttl", "must be a positive duration such as 1h"}
		}
		if _, ok := apiv1.TokenPurpose_name[int32(r.GetPurpose())]; !ok {
			return &fieldError{"purpose", "must be agent or controller"}
		}
	case *apiv1.CreateTaskRequest:
		if err := nodeName("node", r.GetNode()); err != nil {
			return err
		}
		if id := r.GetId(); id != "" {
			if tasks.ValidateID(id) != nil {
				return &fieldError{"id", fmt.Sprintf("%q: use letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit; or leave it empty for a generated ID", id)}
			}
			if strings.HasPrefix(id, tasks.ReservedPrefix) {
				return &fieldError{"id", fmt.Sprintf("%q: IDs starting with %q belong to workflow steps; choose another ID or leave it empty", id, tasks.ReservedPrefix)}
			}
		}
		if r.GetSpec().GetKind() == nil {
			return &fieldError{"spec", "is required: give exactly one task kind (runtime, images, ...)"}
		}
		return validateSpec(r.GetSpec())
	case *apiv1.RunTasksRequest:
		return validateRun(r)
	case *apiv1.GetTaskRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.CancelTaskRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.WatchTaskRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.GetTaskLogsRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.CreateWorkflowRequest:
		if id := r.GetId(); id != "" && workflows.ValidateID(id) != nil {
			return &fieldError{"id", fmt.Sprintf("%q: use \"wf-\" then 1 to 40 lower-case letters, digits and '-', starting and ending with a letter or digit; or leave it empty for a generated ID", id)}
		}
		return validateWorkflow(r.GetSpec())
	case *apiv1.PlanWorkflowRequest:
		return validateWorkflow(r.GetSpec())
	case *apiv1.GetWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.CancelWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.RetryWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.PauseWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.ResumeWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.WatchWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.GetWorkflowLogsRequest:
		if r.GetNode() != "" {
			if err := nodeName("node", r.GetNode()); err != nil {
				return err
			}
		}
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.CreateKubeconfigRequest:
		return validateKubeconfig(r)
	case *apiv1.RemoveMemberRequest:
		return required("id", r.GetId(), "give the replica name shown by deckctl members")
	case *agentv1.EnrollRequest:
		if err := required("token", r.GetToken(), "pass --token from deckctl token create"); err != nil {
			return err
		}
		if err := nodeName("node_name", r.GetNodeName()); err != nil {
			return err
		}
		if len(r.GetCsrPem()) == 0 {
			return &fieldError{"csr_pem", "is required: a PEM certificate request for the node key"}
		}
		return required("machine_id", r.GetMachineId(), "the agent sends /etc/machine-id or its own persisted ID")
	case *clusterv1.FetchCARequest:
		if err := required("token", r.GetToken(), "pass --token from deckctl token create --purpose controller"); err != nil {
			return err
		}
		return required("replica_id", r.GetReplicaId(), "the joining replica's name")
	}
	return nil
}

func invalid(err error) error {
	if fe, ok := err.(*fieldError); ok {
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": fe.field}, fe.Error())
	}
	return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, nil, err.Error())
}

// ValidateUnary rejects invalid requests with InvalidArgument naming the field.
func ValidateUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := validate(req); err != nil {
		return nil, invalid(err)
	}
	return handler(ctx, req)
}

// validateSpec checks every field of a task spec at the edge (specrules.go), with the same
// rules the agent applies, so a bad value is refused before it is stored.
func validateSpec(spec *taskv1.TaskSpec) error {
	return walkSpec("spec", spec.ProtoReflect())
}

// validateWorkflow checks a workflow spec's shape; what depends on the cluster (is the
// node enrolled, is there a cluster) is checked when the steps are built.
func validateWorkflow(spec *apiv1.WorkflowSpec) error {
	switch k := spec.GetKind().(type) {
	case *apiv1.WorkflowSpec_Init:
		if err := nodeName("spec.init.node", k.Init.GetNode()); err != nil {
			return err
		}
		if a := k.Init.GetAddress(); a != "" {
			if err := nodeAddress("spec.init.address", a); err != nil {
				return err
			}
		}
		if err := nodeOptions("spec.init.options", k.Init.GetNode(), k.Init.GetOptions()); err != nil {
			return err
		}
		if _, err := kubeadmconfig.ParseCluster(k.Init.GetCluster()); err != nil {
			return fieldFrom("spec.init.cluster", err)
		}
		for path, m := range map[string]proto.Message{"spec.init.cluster": k.Init.GetCluster(), "spec.init.packages": k.Init.GetPackages(), "spec.init.runtime": k.Init.GetRuntime()} {
			if err := walkSpec(path, m.ProtoReflect()); err != nil {
				return err
			}
		}
	case *apiv1.WorkflowSpec_Join:
		if err := nodeName("spec.join.node", k.Join.GetNode()); err != nil {
			return err
		}
		if a := k.Join.GetAddress(); a != "" {
			if err := nodeAddress("spec.join.address", a); err != nil {
				return err
			}
		}
		return nodeOptions("spec.join.options", k.Join.GetNode(), k.Join.GetOptions())
	case *apiv1.WorkflowSpec_Reset_:
		if err := nodeName("spec.reset.node", k.Reset_.GetNode()); err != nil {
			return err
		}
		if d := k.Reset_.GetDrainTimeout(); d != nil && (!d.IsValid() || d.AsDuration() < 0 || d.AsDuration() > 24*time.Hour) {
			return &fieldError{"spec.reset.drain_timeout", "must be between 0 (the default, 5m) and 24h"}
		}
	case *apiv1.WorkflowSpec_Apply:
		if len(k.Apply.GetClusterYaml()) == 0 {
			return &fieldError{"spec.apply.cluster_yaml", "is required: the cluster document (deckctl apply -f cluster.yaml)"}
		}
		if len(k.Apply.GetClusterYaml()) > 1<<20 {
			return &fieldError{"spec.apply.cluster_yaml", "is larger than 1 MiB"}
		}
		doc, err := clusterspec.Parse(k.Apply.GetClusterYaml())
		if err != nil {
			return &fieldError{"spec.apply.cluster_yaml", err.Error()}
		}
		for _, m := range []proto.Message{doc.Spec, doc.Packages, doc.Runtime} {
			if err := walkSpec("cluster document", m.ProtoReflect()); err != nil {
				return &fieldError{"spec.apply.cluster_yaml", err.Error()}
			}
		}
	case *apiv1.WorkflowSpec_Upgrade:
		u := k.Upgrade
		// The form only: whether Deckhand supports the release is the upgrade rules' to say.
		if _, ok := kubeimages.ParseRelease(u.GetKubernetesVersion()); !ok {
			return &fieldError{"spec.upgrade.kubernetes_version", fmt.Sprintf("%q: give the release to upgrade to, such as v1.34.12", u.GetKubernetesVersion())}
		}
		if m := u.GetMaxUnavailable(); m != "" && !maxUnavailableRE.MatchString(m) {
			return &fieldError{"spec.upgrade.max_unavailable", fmt.Sprintf("%q: give a number of workers (2) or a percentage of them (25%%)", m)}
		}
		if d := u.GetDrainTimeout(); d != nil && (!d.IsValid() || d.AsDuration() < 0 || d.AsDuration() > 24*time.Hour) {
			return &fieldError{"spec.upgrade.drain_timeout", "must be between 0 (the default, 5m) and 24h"}
		}
		if len(u.GetSha256()) > 3 {
			return &fieldError{"spec.upgrade.sha256", "pins kubelet, kubeadm and kubectl: at most 3 entries"}
		}
		for _, k := range slices.Sorted(maps.Keys(u.GetSha256())) {
			p := fmt.Sprintf("spec.upgrade.sha256[%q]", k)
			if k != "kubelet" && k != "kubeadm" && k != "kubectl" {
				return &fieldError{p, "pins kubelet, kubeadm or kubectl only"}
			}
			if !hex64RE.MatchString(u.GetSha256()[k]) {
				return &fieldError{p, "is not a SHA-256 digest: give 64 hex digits, as sha256sum prints them"}
			}
		}
	case *apiv1.WorkflowSpec_CertsRenew:
		nodes := k.CertsRenew.GetNodes()
		if len(nodes) > MaxCertsRenewNodes {
			return &fieldError{"spec.certs_renew.nodes", fmt.Sprintf("%d nodes, at most %d (a cluster's control planes)", len(nodes), MaxCertsRenewNodes)}
		}
		for i, n := range nodes {
			if err := nodeName(fmt.Sprintf("spec.certs_renew.nodes[%d]", i), n); err != nil {
				return err
			}
		}
	case *apiv1.WorkflowSpec_EtcdRestore:
		if n := k.EtcdRestore.GetNode(); n != "" {
			if err := nodeName("spec.etcd_restore.node", n); err != nil {
				return err
			}
		}
		if !snapshotNameRE.MatchString(k.EtcdRestore.GetSnapshot()) {
			return &fieldError{"spec.etcd_restore.snapshot", fmt.Sprintf("%q is not a snapshot name: give one deckctl etcd snapshots lists", k.EtcdRestore.GetSnapshot())}
		}
	default:
		return &fieldError{"spec", "is required: give one of init, join, reset, apply, upgrade, certs_renew or etcd_restore"}
	}
	return nil
}

// MaxCertsRenewNodes bounds the control planes a certificate renewal names.
const MaxCertsRenewNodes = 64

// maxUnavailableRE is an upgrade's --max-unavailable: N, or P%.
var maxUnavailableRE = regexp.MustCompile(`^([1-9][0-9]{0,5}|[1-9][0-9]?%|100%)$`)

// nodeOptions checks a workflow's node options (labels, taints, kubelet flags) with the
// rules of the NodeSpec they become.
func nodeOptions(path, node string, o *apiv1.NodeOptions) error {
	if o == nil {
		return nil
	}
	ns := &taskv1.NodeSpec{Name: node, Labels: o.GetLabels(), Taints: o.GetTaints(), NoTaints: o.GetNoTaints(), KubeletExtraArgs: o.GetKubeletExtraArgs()}
	return walkSpec(path, ns.ProtoReflect())
}

// ValidateStream rejects invalid stream requests the same way.
func ValidateStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatingStream{ServerStream: ss})
}

type validatingStream struct{ grpc.ServerStream }

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := validate(m); err != nil {
		return invalid(err)
	}
	return nil
}

// kubeconfigRoles are the roles CreateKubeconfig grants, by their kubeuser names.
var kubeconfigRoles = map[apiv1.KubeconfigRole]string{
	apiv1.KubeconfigRole_KUBECONFIG_ROLE_ADMIN: kubeuser.RoleAdmin,
	apiv1.KubeconfigRole_KUBECONFIG_ROLE_VIEW:  kubeuser.RoleView,
}

func validateKubeconfig(r *apiv1.CreateKubeconfigRequest) error {
	if err := kubeuser.CheckName(r.GetName()); err != nil {
		return &fieldError{"name", err.Error()}
	}
	role, ok := kubeconfigRoles[r.GetRole()]
	if !ok {
		return &fieldError{"role", fmt.Sprintf("%v: use KUBECONFIG_ROLE_ADMIN (cluster-admin) or KUBECONFIG_ROLE_VIEW (read-only)", r.GetRole())}
	}
	d := r.GetTtl()
	if d == nil || !d.IsValid() {
		return &fieldError{"ttl", fmt.Sprintf("is required: give %v to %v, for example 24h", kubeuser.MinTTL, kubeuser.MaxTTL)}
	}
	if err := kubeuser.CheckTTL(d.AsDuration()); err != nil {
		return &fieldError{"ttl", err.Error()}
	}
	if _, err := kubeuser.CheckCSR([]byte(r.GetCsrPem()), r.GetName(), kubeuser.Groups(role)); err != nil {
		return &fieldError{"csr_pem", err.Error() + " (deckctl kubeconfig makes a matching one)"}
	}
	return nil
}

// auditFilter checks the filters of the audit trail's reads.
func auditFilter(who, node string) error {
	if node != "" {
		if err := nodeName("node", node); err != nil {
			return err
		}
	}
	if len(who) > 128 || strings.ContainsFunc(who, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &fieldError{"who", "must be a credential name or a role (admin, operator, viewer, agent, replica, token), at most 128 characters"}
	}
	return nil
}

// validateRun checks a fan-out: its ID (a prefix of its tasks' IDs), the selector's names
// and attributes, the limits and the spec.
func validateRun(r *apiv1.RunTasksRequest) error {
	if id := r.GetId(); id != "" {
		switch {
		case len(id) > fanout.MaxIDLength || strings.Contains(id, ".") || tasks.ValidateID(id) != nil:
			return &fieldError{"id", fmt.Sprintf("%q: use letters, digits, '_' and '-', at most %d, starting with a letter or digit; or leave it empty for a generated ID", bounded.String(id, 80), fanout.MaxIDLength)}
		case strings.HasPrefix(id, tasks.ReservedPrefix):
			return &fieldError{"id", fmt.Sprintf("%q: IDs starting with %q belong to workflow steps; choose another ID or leave it empty", id, tasks.ReservedPrefix)}
		}
	}
	sel := r.GetNodes()
	if len(sel.GetNames()) > fanout.MaxNodes {
		return &fieldError{"nodes.names", fmt.Sprintf("%d names: at most %d in one run", len(sel.GetNames()), fanout.MaxNodes)}
	}
	for i, n := range sel.GetNames() {
		if err := nodeName(fmt.Sprintf("nodes.names[%d]", i), n); err != nil {
			return err
		}
	}
	if len(sel.GetMatch()) > len(fanout.Keys()) {
		return &fieldError{"nodes.match", fmt.Sprintf("%d keys: use at most one each of %s", len(sel.GetMatch()), strings.Join(fanout.Keys(), ", "))}
	}
	for k, v := range sel.GetMatch() {
		if !slices.Contains(fanout.Keys(), k) {
			return &fieldError{"nodes.match", fmt.Sprintf("key %q: use %s", bounded.String(k, 64), strings.Join(fanout.Keys(), ", "))}
		}
		if len(v) > 253 {
			return &fieldError{"nodes.match." + k, "is longer than 253 bytes"}
		}
	}
	if d := r.GetTimeout(); d != nil && !d.IsValid() {
		return &fieldError{"timeout", "is not a valid duration: give one such as 5m"}
	}
	if c := r.GetConcurrency(); c < 0 || c > fanout.MaxConcurrency {
		return &fieldError{"concurrency", fmt.Sprintf("%d: give 1 to %d, or 0 for %d", c, fanout.MaxConcurrency, fanout.DefaultConcurrency)}
	}
	if d := r.GetTimeout().AsDuration(); d < 0 || d > fanout.MaxTimeout {
		return &fieldError{"timeout", fmt.Sprintf("%s: give at most %s, or 0 for %s", d, fanout.MaxTimeout, fanout.DefaultTimeout)}
	}
	if r.GetSpec().GetKind() == nil {
		return &fieldError{"spec", "is required: give exactly one task kind (ping, facts, preflight, ...)"}
	}
	if err := directOnly(r.GetSpec()); err != nil {
		return err
	}
	return validateSpec(r.GetSpec())
}

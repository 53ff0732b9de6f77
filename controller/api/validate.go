package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
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
		if r.GetSpec().GetKind() == nil {
			return &fieldError{"spec", "is required: give exactly one task kind (runtime, images, ...)"}
		}
		return validateSpec(r.GetSpec())
	case *apiv1.GetTaskRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.CancelTaskRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.WatchTaskRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.GetTaskLogsRequest:
		return required("id", r.GetId(), "give the task ID printed by deckctl task run")
	case *apiv1.CreateWorkflowRequest:
		return validateWorkflow(r.GetSpec())
	case *apiv1.PlanWorkflowRequest:
		return validateWorkflow(r.GetSpec())
	case *apiv1.GetWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.CancelWorkflowRequest:
		return required("id", r.GetId(), "give the workflow ID shown by deckctl workflows")
	case *apiv1.RetryWorkflowRequest:
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

// validateSpec checks the fields of a task spec that the controller can judge at the edge,
// with the same rules the agent applies.
func validateSpec(spec *taskv1.TaskSpec) error {
	var reg *taskv1.RegistrySettings
	var version, prefix string
	switch k := spec.GetKind().(type) {
	case *taskv1.TaskSpec_Runtime:
		reg, version, prefix = k.Runtime.GetRegistry(), k.Runtime.GetKubernetesVersion(), "spec.runtime."
		if d := k.Runtime.GetCgroupDriver(); d != "" && d != "systemd" && d != "cgroupfs" {
			return &fieldError{prefix + "cgroup_driver", fmt.Sprintf("%q: use systemd or cgroupfs, matching the kubelet", d)}
		}
	case *taskv1.TaskSpec_Images:
		reg, version, prefix = k.Images.GetRegistry(), k.Images.GetKubernetesVersion(), "spec.images."
		for i, img := range k.Images.GetImages() {
			if _, err := kubeimages.ParseReference(img); err != nil {
				return &fieldError{fmt.Sprintf("%simages[%d]", prefix, i), err.Error()}
			}
		}
		if len(k.Images.GetImages()) > 0 {
			version = "" // explicit images: the version is not used
		}
		a := k.Images.GetAction()
		if (a == taskv1.ImagesAction_IMAGES_ACTION_EXPORT || a == taskv1.ImagesAction_IMAGES_ACTION_IMPORT) && !strings.HasPrefix(k.Images.GetArchivePath(), "/") {
			return &fieldError{prefix + "archive_path", "is required for export and import: an absolute path on the node"}
		}
		if a == taskv1.ImagesAction_IMAGES_ACTION_LIST || a == taskv1.ImagesAction_IMAGES_ACTION_IMPORT {
			version = ""
		}
	case *taskv1.TaskSpec_KubeadmInit:
		return validateKubeadm("spec.kubeadm_init.", k.KubeadmInit.GetCluster(), k.KubeadmInit.GetNode())
	case *taskv1.TaskSpec_KubeadmJoin:
		return validateKubeadm("spec.kubeadm_join.", k.KubeadmJoin.GetCluster(), k.KubeadmJoin.GetNode())
	case *taskv1.TaskSpec_Packages:
		if _, _, err := kubeimages.ParseKubernetesVersion(k.Packages.GetKubernetesVersion()); err != nil {
			return &fieldError{"spec.packages.kubernetes_version", err.Error()}
		}
		return nil
	default:
		return nil
	}
	if _, err := kubeimages.ParseRegistry(reg.GetImageRepository(), reg.GetMirrors(), reg.GetInsecureRegistries()); err != nil {
		return &fieldError{prefix + "registry", err.Error()}
	}
	if version != "" {
		if _, _, err := kubeimages.ParseKubernetesVersion(version); err != nil {
			return &fieldError{prefix + "kubernetes_version", err.Error()}
		}
	}
	return nil
}

// validateWorkflow checks a workflow spec's shape; what depends on the cluster (is the
// node enrolled, is there a cluster) is checked when the steps are built.
func validateWorkflow(spec *apiv1.WorkflowSpec) error {
	switch k := spec.GetKind().(type) {
	case *apiv1.WorkflowSpec_Init:
		if err := nodeName("spec.init.node", k.Init.GetNode()); err != nil {
			return err
		}
		if _, err := kubeadmconfig.ParseCluster(k.Init.GetCluster()); err != nil {
			return &fieldError{"spec.init.cluster", err.Error()}
		}
	case *apiv1.WorkflowSpec_Join:
		return nodeName("spec.join.node", k.Join.GetNode())
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
	default:
		return &fieldError{"spec", "is required: give one of init, join, reset or apply"}
	}
	return nil
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

// validateKubeadm checks a cluster and node spec with the same rules that render kubeadm's
// configuration on the agent (overlapping subnets, RFC 1123 names, supported versions, ...).
func validateKubeadm(prefix string, cluster *taskv1.ClusterSpec, node *taskv1.NodeSpec) error {
	if _, err := kubeadmconfig.ParseCluster(cluster); err != nil {
		return &fieldError{prefix + "cluster", err.Error()}
	}
	if _, err := kubeadmconfig.ParseNode(node); err != nil {
		return &fieldError{prefix + "node", err.Error()}
	}
	return nil
}

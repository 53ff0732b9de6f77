package api

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/workflows"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// NodeServer implements apiv1.NodeServiceServer.
type NodeServer struct {
	apiv1.UnimplementedNodeServiceServer
	nodes *nodes.Registry
	// Workflows, when set, adds each node's cluster role and the workflow holding it.
	Workflows *workflows.Service
}

// NewNodeServer serves the inventory.
func NewNodeServer(reg *nodes.Registry) *NodeServer { return &NodeServer{nodes: reg} }

// annotate fills the cluster role and lock holder of ns.
func (s *NodeServer) annotate(ctx context.Context, ns ...*apiv1.Node) error {
	if s.Workflows == nil {
		return nil
	}
	return annotateNodes(ctx, s.Workflows, ns)
}

// annotateNodes fills the cluster role of ns from the cluster record and the workflow that
// holds each: they are not in the node records.
func annotateNodes(ctx context.Context, wf *workflows.Service, ns []*apiv1.Node) error {
	cl, err := wf.Cluster(ctx)
	if err != nil {
		return err
	}
	locks, err := wf.Locks(ctx)
	if err != nil {
		return err
	}
	roles := make(map[string]string, len(cl.GetNodes()))
	for _, cn := range cl.GetNodes() {
		roles[cn.GetName()] = "worker"
		if cn.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			roles[cn.GetName()] = "control-plane"
		}
	}
	for _, n := range ns {
		n.LockedBy = locks[n.GetName()]
		if r, ok := roles[n.GetName()]; ok {
			n.ClusterRole = r
		}
	}
	return nil
}

func (s *NodeServer) GetNode(ctx context.Context, req *apiv1.GetNodeRequest) (*apiv1.GetNodeResponse, error) {
	n, _, err := s.nodes.Get(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.annotate(ctx, n); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.GetNodeResponse{Node: n}, nil
}

func (s *NodeServer) ListNodes(ctx context.Context, req *apiv1.ListNodesRequest) (*apiv1.ListNodesResponse, error) {
	pg, err := newPage("nodes", "", req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, invalid(err)
	}
	all, err := s.nodes.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	for _, n := range all {
		summarize(n.GetFacts().ProtoReflect())
	}
	out, next := take(pg, all, func(n *apiv1.Node) string { return n.GetName() })
	if err := s.annotate(ctx, out...); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ListNodesResponse{Nodes: out, NextPageToken: next}, nil
}

// A node list shows each node's facts in summary: strings and lists cut to these lengths,
// so an agent that reported megabytes of facts cannot make the list fail. GetNode returns
// them whole.
const (
	SummaryMaxString = 256
	SummaryMaxList   = 32
)

// summarize cuts m's strings and lists (and those of its messages) in place.
func summarize(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			if l.Len() > SummaryMaxList {
				l.Truncate(SummaryMaxList)
			}
			for i := range l.Len() {
				if fd.Kind() == protoreflect.StringKind {
					l.Set(i, protoreflect.ValueOfString(cut(l.Get(i).String())))
				} else if fd.Kind() == protoreflect.MessageKind {
					summarize(l.Get(i).Message())
				}
			}
		case fd.IsMap():
			mp := v.Map()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for i, k := range keys {
				switch {
				case i >= SummaryMaxList || len(k.String()) > SummaryMaxString:
					mp.Clear(k)
				case fd.MapValue().Kind() == protoreflect.StringKind:
					mp.Set(k, protoreflect.ValueOfString(cut(mp.Get(k).String())))
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(cut(v.String())))
		case fd.Kind() == protoreflect.MessageKind:
			summarize(v.Message())
		}
		return true
	})
}

func cut(s string) string {
	if len(s) <= SummaryMaxString {
		return s
	}
	return strings.ToValidUTF8(s[:SummaryMaxString], "") + "..."
}

// DeleteNode forgets a node. A node that is in the Kubernetes cluster is refused without
// force: deleting it would leave it in the cluster with an agent nobody can reach, so
// deckctl reset is the way out (it removes the node from the cluster, then it may go).
func (s *NodeServer) DeleteNode(ctx context.Context, req *apiv1.DeleteNodeRequest) (*apiv1.DeleteNodeResponse, error) {
	name := req.GetName()
	if !req.GetForce() && s.Workflows != nil {
		if _, _, err := s.nodes.Get(ctx, name); err != nil {
			return nil, toStatus(err)
		}
		cl, err := s.Workflows.Cluster(ctx) // nil before the first cluster is created
		if err != nil {
			return nil, toStatus(err)
		}
		for _, cn := range cl.GetNodes() {
			if cn.GetName() != name {
				continue
			}
			role := "worker"
			if cn.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
				role = "control-plane"
			}
			return nil, Errorf(codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_WRONG_STATE,
				map[string]string{"node": name, "state": "in-cluster", "cluster_role": role, "flag": "--force"},
				fmt.Sprintf("node %s is a %s of the Kubernetes cluster: take it out first with deckctl reset %s, then delete it; --force deletes it anyway and leaves it in the cluster (its agent then needs a new token: deckhand-agent --token-file FILE)", name, role, name))
		}
	}
	if err := s.nodes.Delete(ctx, name); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.DeleteNodeResponse{}, nil
}

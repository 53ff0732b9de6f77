package api

import (
	"context"

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
	cl, err := s.Workflows.Cluster(ctx)
	if err != nil {
		return err
	}
	locks, err := s.Workflows.Locks(ctx)
	if err != nil {
		return err
	}
	for _, n := range ns {
		n.LockedBy = locks[n.GetName()]
		for _, cn := range cl.GetNodes() {
			if cn.GetName() == n.GetName() {
				n.ClusterRole = "worker"
				if cn.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
					n.ClusterRole = "control-plane"
				}
			}
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

func (s *NodeServer) ListNodes(ctx context.Context, _ *apiv1.ListNodesRequest) (*apiv1.ListNodesResponse, error) {
	all, err := s.nodes.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.annotate(ctx, all...); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.ListNodesResponse{Nodes: all}, nil
}

func (s *NodeServer) DeleteNode(ctx context.Context, req *apiv1.DeleteNodeRequest) (*apiv1.DeleteNodeResponse, error) {
	if err := s.nodes.Delete(ctx, req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.DeleteNodeResponse{}, nil
}

package api

import (
	"context"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"

	"github.com/deckhandhq/deckhand/controller/nodes"
)

// NodeServer implements apiv1.NodeServiceServer.
type NodeServer struct {
	apiv1.UnimplementedNodeServiceServer
	nodes *nodes.Registry
}

// NewNodeServer serves the inventory.
func NewNodeServer(reg *nodes.Registry) *NodeServer { return &NodeServer{nodes: reg} }

func (s *NodeServer) GetNode(ctx context.Context, req *apiv1.GetNodeRequest) (*apiv1.GetNodeResponse, error) {
	n, _, err := s.nodes.Get(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &apiv1.GetNodeResponse{Node: n}, nil
}

func (s *NodeServer) ListNodes(ctx context.Context, _ *apiv1.ListNodesRequest) (*apiv1.ListNodesResponse, error) {
	all, err := s.nodes.List(ctx)
	if err != nil {
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

package client

import (
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// reads are the calls that change nothing, so sending one again is always safe.
var reads = map[string]bool{
	apiv1.AuditService_ListAuditEvents_FullMethodName:      true,
	apiv1.AuditService_WatchAuditEvents_FullMethodName:     true,
	apiv1.CredentialService_ListCredentials_FullMethodName: true,
	apiv1.MemberService_ListMembers_FullMethodName:         true,
	apiv1.NodeService_GetNode_FullMethodName:               true,
	apiv1.NodeService_ListNodes_FullMethodName:             true,
	apiv1.TaskService_GetTask_FullMethodName:               true,
	apiv1.TaskService_ListTasks_FullMethodName:             true,
	apiv1.TaskService_WatchTask_FullMethodName:             true,
	apiv1.TaskService_GetTaskLogs_FullMethodName:           true,
	apiv1.TokenService_ListTokens_FullMethodName:           true,
	apiv1.WorkflowService_GetWorkflow_FullMethodName:       true,
	apiv1.WorkflowService_ListWorkflows_FullMethodName:     true,
	apiv1.WorkflowService_WatchWorkflow_FullMethodName:     true,
	apiv1.WorkflowService_GetWorkflowLogs_FullMethodName:   true,
	apiv1.WorkflowService_PlanWorkflow_FullMethodName:      true,
	apiv1.WorkflowService_GetCluster_FullMethodName:        true,
}

// Idempotent reports whether sending the call again has the same effect as sending it
// once, so a call whose answer was lost with its controller can be retried on another:
// every read, a task or workflow created with a client-chosen ID (the same request again
// returns the recorded one), and pausing or resuming a workflow. Every other write is sent once: a second CreateWorkflow
// without an ID would start a second workflow, a second cancel or revoke would answer that
// it was already done, a second token or credential would be another one.
func Idempotent(method string, req any) bool {
	if reads[method] {
		return true
	}
	switch method {
	case apiv1.TaskService_CreateTask_FullMethodName:
		r, ok := req.(*apiv1.CreateTaskRequest)
		return ok && r.GetId() != ""
	case apiv1.TaskService_RunTasks_FullMethodName:
		r, ok := req.(*apiv1.RunTasksRequest)
		return ok && r.GetId() != "" // the same run again resumes it
	case apiv1.WorkflowService_CreateWorkflow_FullMethodName:
		r, ok := req.(*apiv1.CreateWorkflowRequest)
		return ok && r.GetId() != ""
	case apiv1.WorkflowService_PauseWorkflow_FullMethodName, apiv1.WorkflowService_ResumeWorkflow_FullMethodName:
		return true // they set a flag: again, it is set already, and the workflow is answered
	}
	return false
}

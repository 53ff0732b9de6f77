// Package api holds the gRPC handlers of the public API. It is the only place where domain
// errors become gRPC statuses, each with a google.rpc.ErrorInfo whose reason is an
// apiv1.ErrorReason, so clients switch on reasons and never on message text.
package api

// Package rest serves Deckhand's public API as REST/JSON (grpc-gateway) on the controller's
// TLS port, beside gRPC: the same mTLS, role table, audit trail and errors, because every
// REST call is made as a gRPC call through the controller's own server.
package rest

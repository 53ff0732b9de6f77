// Package controller wires a deckhand-controller replica: it listens on one port shared by
// raft and gRPC, opens the store, serves the public API, health and reflection, and runs
// leader-only work under the store's Elector. cmd/deckhand-controller only parses flags into
// a Config and calls New and Run.
package controller

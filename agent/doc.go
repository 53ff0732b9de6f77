// Package agent is deckhand-agent's wiring: enrollment (a bootstrap token and a CSR, with
// the controller's CA pinned by hash), the identity kept in the data dir (key and
// certificate 0600), and the session loop: one bidirectional stream to any controller,
// hello with the host's facts, heartbeats, and reconnection across the whole controller
// list with jittered exponential backoff. Host paths go through Config.Root.
//
// The agent never imports the controller or a store backend (scripts/lint-deps.sh).
package agent

// Package agent will hold deckhand-agent's wiring: enrollment, the session loop with
// reconnect and backoff, and the task runners. The agent never imports the controller or a
// store backend (scripts/lint-deps.sh enforces it).
package agent

// Package client is the Go client of Deckhand's public API, the one deckctl uses.
//
// New reads a credential file (a controller's admin.conf, or one made by deckctl
// credentials create), dials the controllers it lists over mutual TLS, and returns a Client
// whose service clients (Nodes, Workflows, Tasks, Members, Tokens, Credentials) fail over
// between controllers on their own:
//
//   - a call goes to the controller that answered last; when it does not answer (dead,
//     unreachable, or without quorum) the next listed controller is tried, those that
//     failed recently last;
//   - reads (Get, List, Watch, Plan and log calls) and writes that are idempotent (a task
//     or workflow created with a client-chosen ID) are retried on another controller for up to
//     Options.RetryFor; other writes are sent once, and an answer lost with a dying
//     controller is returned as an error, never sent twice;
//   - the controller list is refreshed from the Members RPC when the client connects and
//     after each failover, so a credential file naming a single controller reaches every
//     member; SaveEndpoints writes the list back into the file (atomically, mode 0600)
//     when it changed.
//
// The workflow helpers (CreateWorkflow, Watch, WatchWorkflow, WorkflowLogs) follow a
// workflow across controller failovers; Watch delivers its states, step changes and task
// events (log lines, progress) each once, however many streams it took.
package client

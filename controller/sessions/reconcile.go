package sessions

import (
	"github.com/deckhandhq/deckhand/controller/nodes"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// Why Reconcile ends a session.
const (
	StaleDeleted    = "node was deleted"
	StaleReenrolled = "node was enrolled again with a new certificate"
)

// Reconcile compares what this replica holds for nodes with a fresh list of the node
// records, for when the records' watch may have skipped revisions (it ended, for example
// with ErrCompacted after a snapshot install): open maps each node with a session here to
// the serial of the certificate it connected with, budgets lists the nodes the Limiter
// holds budgets for, and records maps each listed node's name to its record (nil: listed
// but unreadable, left alone). It returns the sessions to end (node → why: StaleDeleted or
// StaleReenrolled) and the nodes whose budgets to forget (deleted).
func Reconcile(open map[string]string, budgets []string, records map[string]*apiv1.Node) (drop map[string]string, forget []string) {
	drop = map[string]string{}
	for node, serial := range open {
		rec, ok := records[node]
		switch {
		case !ok:
			drop[node] = StaleDeleted
		case rec != nil && !nodes.ValidSerial(rec, serial):
			drop[node] = StaleReenrolled
		}
	}
	for _, node := range budgets {
		if _, ok := records[node]; !ok {
			forget = append(forget, node)
		}
	}
	return drop, forget
}

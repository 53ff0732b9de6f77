// Package wirelimits declares how large a task result an agent may send a controller, and
// the one function that fits a result within it. The controller enforces the limits on what
// it receives (controller/sessions); the agent fits its results before it sends or journals
// them, so an honest agent's result is never refused whole (a refused result would be sent
// again from the journal on every reconnect).
package wirelimits

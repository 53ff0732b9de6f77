package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// ping answers with the agent's version and clock: nothing on the host is read or changed.
func ping(context.Context, *taskv1.Task, *host.Host, *tasks.Emitter) (map[string]string, error) {
	return map[string]string{"agent_version": Version, "agent_time": time.Now().UTC().Format(time.RFC3339Nano)}, nil
}

// factsTask collects the host's facts with c and reports a summary; the agent sends the
// facts themselves to the controller after the task (the kind changes facts), when they
// changed.
func factsTask(c *facts.Collector) tasks.Handler {
	return func(ctx context.Context, _ *taskv1.Task, _ *host.Host, e *tasks.Emitter) (map[string]string, error) {
		f, err := c.Collect(ctx)
		if err != nil {
			return nil, fmt.Errorf("collecting facts: %w", err)
		}
		rt := f.GetRuntime()
		runtime := strings.TrimSpace(rt.GetName() + " " + rt.GetVersion())
		out := map[string]string{
			"hostname":  f.GetHostname(),
			"os":        f.GetOsName(),
			"kernel":    f.GetKernel(),
			"runtime":   runtime,
			"kubelet":   f.GetKubeVersions()["kubelet"],
			"cpus":      fmt.Sprint(f.GetCpus()),
			"addresses": strings.Join(f.GetIpAddresses(), ","),
		}
		e.Logf("facts collected: %s, %s, kernel %s, %s cpus", out["hostname"], out["os"], out["kernel"], out["cpus"])
		return out, nil
	}
}

package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	buildinfo "github.com/deckhandhq/deckhand/internal/version"
)

// deckctl version shows its own build, every replica's and every agent's, warns about an
// agent whose build the controllers do not support, and prints the same as -o json.
func TestVersionShowsEveryBuildAndWarnsOnSkew(t *testing.T) {
	c := testcluster.New(t, 3)
	if _, err := c.StartAgent(c.AgentConfig("node-1", c.CreateToken(1))); err != nil {
		t.Fatal(err)
	}
	build := buildinfo.Get().String()
	admin := c.AdminConfig()

	// --version and version --client need no controller.
	for _, args := range [][]string{{"--version"}, {"version", "--client"}} {
		out, err := deckctlTo("127.0.0.1:1", admin, args...)
		if err != nil || !strings.Contains(out, build) || strings.Count(out, build) != 1 {
			t.Fatalf("deckctl %s = %q, %v; want the build %q once", strings.Join(args, " "), out, err, build)
		}
	}

	// Every replica and the agent report this build: one row each, no warning.
	var out string
	testcluster.WaitFor(t, 30*time.Second, func() error {
		var err error
		if out, err = deckctlAs(c, admin, "version"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, want := range []string{"controller", "agent", "node-1"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("no %q in:\n%s", want, out)
			}
		}
		if n := strings.Count(out, build); n != 5 {
			return fmt.Errorf("the build %q shown %d times, want 5 (deckctl, 3 controllers, 1 agent):\n%s", build, n, out)
		}
		return nil
	})
	if strings.Contains(out, "WARNING") {
		t.Fatalf("one build everywhere, yet a warning:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) < 3 || !strings.HasSuffix(line, build) {
			t.Fatalf("row %q does not end with the build %q:\n%s", line, build, out)
		}
	}
	if mem, err := deckctlAs(c, admin, "members"); err != nil || strings.Count(mem, build) != 3 {
		t.Fatalf("deckctl members shows the build %q not once per replica: %v\n%s", build, err, mem)
	}
	if desc, err := deckctlAs(c, admin, "node", "describe", "node-1"); err != nil || !strings.Contains(desc, "Agent version:") || !strings.Contains(desc, build) ||
		!regexp.MustCompile(`Agent features: +network\.packed-routes, network\.routes-from-record\n`).MatchString(desc) {
		t.Fatalf("deckctl node describe shows no agent version %q or not its features: %v\n%s", build, err, desc)
	}

	// An agent two minor versions behind (its record says so; the agent is stopped so it
	// does not report its own build again).
	c.StopAgent("node-1")
	old := "v0.1.0 (dddddddddddd) go1.24.0"
	reg := nodes.New(c.Controllers[c.WaitLeader()].Store(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, _, err := reg.Get(ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.UpdateFacts(ctx, "node-1", nodes.Agent{Version: old}, n.GetFacts()); err != nil {
		t.Fatal(err)
	}
	out, err = deckctlAs(c, admin, "version")
	if err != nil || !strings.Contains(out, "WARNING: agent node-1 runs "+old) {
		t.Fatalf("deckctl version with a skewed agent = %v:\n%s\nwant a WARNING naming node-1 and its build", err, out)
	}
	js, err := deckctlAs(c, admin, "version", "-o", "json")
	if err != nil {
		t.Fatal(err, js)
	}
	var rep struct {
		Client      string
		Controllers []struct{ Name, Version string }
		Agents      []struct{ Name, Version string }
		Warnings    []string
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, js)
	}
	if rep.Client != build || len(rep.Controllers) != 3 || rep.Controllers[0].Version != build || len(rep.Agents) != 1 || rep.Agents[0].Version != old || len(rep.Warnings) != 1 {
		t.Fatalf("version -o json = %+v", rep)
	}
}

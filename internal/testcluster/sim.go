package testcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	simOnce sync.Once
	simDir  string
	simErr  error
)

// InstallSim puts the systemctl SIMULATION into a simulated host root (ROOT/usr/bin), the
// way the lab does, so tasks that manage services run against real containerd. Stop what
// it started with StopSim.
func InstallSim(t testing.TB, root string) {
	t.Helper()
	simOnce.Do(func() {
		simDir, simErr = os.MkdirTemp("", "deckhand-sim-")
		if simErr == nil {
			var out []byte
			out, simErr = exec.Command("go", "build", "-o", simDir, "github.com/deckhandhq/deckhand/internal/sim/systemctl").CombinedOutput()
			if simErr != nil {
				simErr = &buildError{err: simErr, out: string(out)}
			}
		}
	})
	if simErr != nil {
		t.Fatal(simErr)
	}
	bin := filepath.Join(root, "usr", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(simDir, "systemctl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopSim(root) })
}

// StopSim stops the services the simulation started in root.
func StopSim(root string) {
	_ = exec.Command(filepath.Join(root, "usr", "bin", "systemctl"), "stop", "containerd").Run()
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "build the systemctl simulation: " + e.err.Error() + "\n" + e.out
}

package cli_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
)

// deckctl dashboard refuses, naming the flag, an address other machines could reach, and
// says where credentials come from when it has none.
func TestDashboardRefusesBeforeServing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.conf")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"dashboard", "--listen", "0.0.0.0:8080"}, []string{"--listen", `"0.0.0.0:8080"`, "not a loopback address", "127.0.0.1:PORT"}},
		{[]string{"dashboard", "--listen", ":8080"}, []string{"--listen", "not a loopback address"}},
		{[]string{"dashboard", "--listen", "192.168.1.5:80"}, []string{"--listen", "not a loopback address"}},
		{[]string{"dashboard", "--listen", "localhost"}, []string{"--listen", "not host:port"}},
		{[]string{"--config", missing, "dashboard"}, []string{"no credentials at " + missing, "admin.conf"}},
	} {
		root := cli.NewRoot(&bytes.Buffer{}, &bytes.Buffer{})
		root.SetArgs(c.args)
		err := root.Execute()
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("deckctl %s: %v, want an error with %q", strings.Join(c.args, " "), err, w)
			}
		}
	}
}

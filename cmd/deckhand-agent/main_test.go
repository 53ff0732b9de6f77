package main

import (
	"bytes"
	"strings"
	"testing"
)

// --help says that --root does not confine commands, and how a command is found.
func TestHelpSaysRootDoesNotConfineCommands(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"does NOT confine commands", "no chroot", "ROOT/usr/bin", "then on the agent's own PATH", "CRI socket"} {
		if !strings.Contains(help, want) {
			t.Fatalf("--help does not say %q:\n%s", want, out.String())
		}
	}
}

// Command deckctl is the command line client of the Deckhand controller.
package main

import (
	"fmt"
	"os"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
)

func main() {
	if err := cli.NewRoot(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "deckctl: %v\n", err)
		os.Exit(1)
	}
}

// Command deckhand-agent runs on every host and executes Deckhand's typed tasks.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "deckhand-agent: enrollment and task execution are not part of this version yet; see the README's status section")
	os.Exit(2)
}

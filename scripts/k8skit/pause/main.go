// Command pause is the lab kit's pod sandbox process (lab tooling, never part of a product
// binary): it blocks until SIGINT or SIGTERM and reaps the children re-parented to it, as
// the upstream pause container does. `pause --version` prints the kit's pause version.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is the pause tag kubeadm v1.33 lists; scripts/k8s.sh sets it with -ldflags -X.
var version = "3.10"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println("pause", version)
		return
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

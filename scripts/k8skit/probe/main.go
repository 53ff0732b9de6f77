// Command probe is the lab's test workload (lab tooling, never part of a product binary): a
// static program the real-cluster tests run in pods to check the pod network and DNS.
//
//	probe serve :8080 [5s]   answers every HTTP request with "HOSTNAME from PEER-IP"; with a
//	                         duration, goes on serving that long after SIGTERM (as a server
//	                         behind a Service does while kube-proxy stops sending to it)
//	probe get URL            prints the body of URL; exits 1 when it cannot
//	probe resolve NAME       prints NAME's addresses (the pod's /etc/resolv.conf: CoreDNS)
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 && (len(os.Args) != 4 || os.Args[1] != "serve") {
		fmt.Fprintln(os.Stderr, "usage: probe serve ADDR [LINGER] | get URL | resolve NAME")
		os.Exit(2)
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "serve":
		if len(os.Args) == 4 {
			linger, err := time.ParseDuration(os.Args[3])
			fail(err)
			term := make(chan os.Signal, 1)
			signal.Notify(term, syscall.SIGTERM)
			go func() {
				<-term
				time.Sleep(linger)
				os.Exit(0)
			}()
		}
		name, _ := os.Hostname()
		err := http.ListenAndServe(arg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The peer's address as this pod sees it: a pod network that keeps pod IPs
			// shows the caller's pod IP, not its node's.
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			io.WriteString(w, name+" from "+host+"\n")
		}))
		fail(err)
	case "get":
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(arg)
		fail(err)
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		fail(err)
		if resp.StatusCode != http.StatusOK {
			fail(fmt.Errorf("%s: %s", arg, resp.Status))
		}
		os.Stdout.Write(b)
	case "resolve":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, arg)
		fail(err)
		fmt.Println(strings.Join(addrs, " "))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// lbCmd is the lab's control-plane endpoint: a plain TCP balancer (as HAProxy in TCP mode or
// a cloud load balancer would be) that sends each connection to the next backend that
// accepts it within a second.
//
//	labnode lb --listen 10.250.0.1:6443 --backends 10.250.0.21:6443,10.250.0.22:6443
func lbCmd(args []string) error {
	fs := flag.NewFlagSet("lb", flag.ExitOnError)
	listen := fs.String("listen", "", "host:port to accept on")
	backends := fs.String("backends", "", "comma-separated host:port backends")
	ready := fs.String("ready-file", "", "written once listening")
	fs.Parse(args)
	if *listen == "" || *backends == "" {
		return errors.New("lb: --listen and --backends are required")
	}
	bs := strings.Split(*backends, ",")
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); ln.Close() }()
	var next atomic.Uint64
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			start := next.Add(1)
			for i := range bs {
				b := bs[(int(start)+i)%len(bs)]
				u, err := net.DialTimeout("tcp", b, time.Second)
				if err != nil {
					continue
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
				return
			}
			fmt.Fprintf(os.Stderr, "lb: no backend of %v accepts\n", bs)
		}()
	}
}

package svc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The wire protocol: the shim connects, writes one JSON line {"args": [...]}, and reads
// one JSON line {"stdout": "...", "stderr": "...", "code": N}. One request per connection.
const (
	maxRequest   = 64 << 10 // one request line
	maxArgs      = 256
	maxReplyText = 1 << 20 // stdout and stderr each, then truncated
	maxReply     = 3*maxReplyText + 1024
	ioTimeout    = 10 * time.Second
)

type request struct {
	Args []string `json:"args"`
}

// Serve answers shim requests on ln until ctx is done (then it returns nil). Each
// connection carries one request; requests run concurrently.
func (m *Manager) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve systemctl requests: %w", err)
		}
		go m.handle(c)
	}
}

func (m *Manager) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	var rep reply
	req, err := readRequest(c)
	if err != nil {
		rep = reply{Stderr: "systemctl (labnode): bad request: " + err.Error() + "\n", Code: 1}
	} else {
		rep = m.systemctl(req.Args)
		m.log.Debug("systemctl", "args", req.Args, "code", rep.Code)
	}
	rep.Stdout, rep.Stderr = truncate(rep.Stdout), truncate(rep.Stderr)
	data, err := json.Marshal(rep)
	if err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, _ = c.Write(append(data, '\n')) // a shim that went away has nobody to tell
}

func readRequest(r io.Reader) (request, error) {
	var req request
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxRequest+1), maxRequest+1).ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxRequest {
			return req, fmt.Errorf("more than %d bytes", maxRequest)
		}
		return req, err
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, err
	}
	if len(req.Args) > maxArgs {
		return req, fmt.Errorf("%d arguments, more than %d", len(req.Args), maxArgs)
	}
	return req, nil
}

func truncate(s string) string {
	if len(s) <= maxReplyText {
		return s
	}
	return s[:maxReplyText] + "\n[output truncated]\n"
}

// Call is the systemctl shim: it sends args (without the program name) to the manager
// listening on socket, copies its output to stdout and stderr, and returns its exit code.
func Call(socket string, args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "systemctl (labnode): cannot reach this lab host's service manager at %s: %v; is the host's labnode holder running?\n", socket, err)
		return 1
	}
	c, err := net.DialTimeout("unix", socket, ioTimeout)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	if args == nil {
		args = []string{}
	}
	data, err := json.Marshal(request{Args: args})
	if err != nil {
		return fail(err)
	}
	if len(data) >= maxRequest {
		fmt.Fprintf(stderr, "systemctl (labnode): the command line is more than %d bytes\n", maxRequest)
		return 1
	}
	_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(append(data, '\n')); err != nil {
		return fail(err)
	}
	// No read deadline: a start waits for its unit as systemctl does (TimeoutStartSec).
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxReply), maxReply).ReadSlice('\n')
	if err != nil {
		return fail(fmt.Errorf("read the reply: %w", err))
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fail(fmt.Errorf("read the reply: %w", err))
	}
	_, _ = io.WriteString(stdout, rep.Stdout)
	_, _ = io.WriteString(stderr, rep.Stderr)
	return rep.Code
}

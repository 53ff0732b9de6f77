package netmux

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// InProcess is a listener whose connections come from this process only (Dial): the REST
// gateway calls the gRPC server through it, so every REST call passes the same
// interceptors as a gRPC call. No other process can open one of its connections, so the
// gRPC server may trust what the gateway says about the caller it verified (ForwardedCert):
// ServerCredentials hands such connections InProcessInfo instead of a TLS state.
type InProcess struct {
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

// NewInProcess returns an open in-process listener.
func NewInProcess() *InProcess {
	return &InProcess{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Dial opens a connection to the listener.
func (l *InProcess) Dial(ctx context.Context, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- &inProcessConn{Conn: server}:
		return client, nil
	case <-l.done:
		_ = client.Close()
		_ = server.Close()
		return nil, net.ErrClosed
	case <-ctx.Done():
		_ = client.Close()
		_ = server.Close()
		return nil, ctx.Err()
	}
}

// Accept implements net.Listener.
func (l *InProcess) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *InProcess) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *InProcess) Addr() net.Addr { return inProcessAddr{} }

type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "inprocess" }
func (inProcessAddr) String() string  { return "inprocess" }

// inProcessConn marks the server end of an in-process connection.
type inProcessConn struct{ net.Conn }

// InProcessInfo is the AuthInfo of a connection from the in-process listener: the caller is
// this controller's own REST gateway.
type InProcessInfo struct {
	credentials.CommonAuthInfo
}

// AuthType implements credentials.AuthInfo.
func (InProcessInfo) AuthType() string { return "inprocess" }

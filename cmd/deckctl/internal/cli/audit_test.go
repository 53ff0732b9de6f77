package cli_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/cli"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	"github.com/deckhandhq/deckhand/internal/testkit/testwait"
)

// Who did what: a granted call, a refused one and a failed one are all in deckctl audit, with
// the caller's credential, and the token the granted call made is not.
func TestAuditTrail(t *testing.T) {
	c := testcluster.New(t, 1)
	admin := c.AdminConfig()
	alice := filepath.Join(t.TempDir(), "alice.conf")
	if out, err := deckctlAs(c, admin, "credentials", "create", "--name", "alice", "--role", "viewer", "--file", alice); err != nil {
		t.Fatalf("create alice: %v\n%s", err, out)
	}
	if _, err := deckctlAs(c, alice, "token", "create"); err == nil {
		t.Fatal("a viewer created a token")
	}
	out, err := deckctlAs(c, admin, "token", "create", "--description", "for node-9")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	secret := regexp.MustCompile(`[a-z0-9]{6}\.[a-z0-9]{16}`).FindString(out)
	if secret == "" {
		t.Fatalf("no token in:\n%s", out)
	}
	if _, err := deckctlAs(c, admin, "node", "delete", "node-9"); err == nil {
		t.Fatal("deleting an unknown node succeeded")
	}

	// -f prints what is already there, then each new record.
	var followed syncBuffer
	fctx, stopFollowing := context.WithCancel(t.Context())
	following := make(chan error, 1)
	go func() {
		root := cli.NewRoot(&followed, &followed)
		root.SetArgs([]string{"--config", admin, "--controller", strings.Join(c.Addrs(), ","), "--timeout", "10s", "audit", "-f", "--who", "admin"})
		following <- root.ExecuteContext(fctx)
	}()
	defer func() {
		stopFollowing()
		if err := <-following; err != nil {
			t.Errorf("audit -f ended with %v after the test stopped it", err)
		}
	}()

	out, err = deckctlAs(c, admin, "audit")
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^\S+ \S+\s+admin \(admin\)\s+grpc\s+CredentialService/CreateCredential\s+alice\s+-\s+OK$`,
		`(?m)^\S+ \S+\s+alice \(viewer\)\s+grpc\s+TokenService/CreateToken\s+-\s+-\s+PermissionDenied PERMISSION_DENIED$`,
		`(?m)^\S+ \S+\s+admin \(admin\)\s+grpc\s+TokenService/CreateToken\s+\S+\s+-\s+OK$`,
		`(?m)^\S+ \S+\s+admin \(admin\)\s+grpc\s+NodeService/DeleteNode\s+node-9\s+node-9\s+NotFound NOT_FOUND$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("audit lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ListNodes") || strings.Contains(out, "ListAuditEvents") {
		t.Errorf("reads are in the audit trail:\n%s", out)
	}
	js, err := deckctlAs(c, admin, "audit", "-o", "json")
	if err != nil || !json.Valid([]byte(js)) || !strings.Contains(js, `"request"`) || !strings.Contains(js, "for node-9") {
		t.Fatalf("audit -o json: %v\n%s", err, js)
	}
	if strings.Contains(js, secret) || strings.Contains(out, secret) {
		t.Fatalf("the token %s is in the audit trail", secret)
	}

	if out, _ := deckctlAs(c, admin, "audit", "--who", "alice"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "alice (viewer)") {
		t.Errorf("audit --who alice:\n%s", out)
	}
	if out, _ := deckctlAs(c, admin, "audit", "--node", "node-9"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "DeleteNode") {
		t.Errorf("audit --node node-9:\n%s", out)
	}
	if out, _ := deckctlAs(c, admin, "audit", "--limit", "2"); strings.Count(out, "\n") != 3 ||
		!regexp.MustCompile(`(?s)TokenService/CreateToken .*NodeService/DeleteNode`).MatchString(out) {
		t.Errorf("audit --limit 2 (the newest two, oldest first):\n%s", out)
	}
	if out, _ := deckctlAs(c, admin, "audit", "--since", "1h", "--who", "nobody"); !strings.Contains(out, "no audit records match") {
		t.Errorf("audit --who nobody:\n%s", out)
	}
	if _, err := deckctlAs(c, admin, "audit", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "--since yesterday") {
		t.Errorf("audit --since yesterday: %v, want an error naming the flag", err)
	}
	if _, err := deckctlAs(c, alice, "audit"); err == nil || !strings.Contains(err.Error(), "PERMISSION_DENIED") {
		t.Errorf("a viewer read the audit trail: %v", err)
	}

	// A new call reaches the follower.
	testwait.For(t, 10*time.Second, func() error {
		if !strings.Contains(followed.String(), "NodeService/DeleteNode") {
			return fmt.Errorf("audit -f has not listed the earlier records:\n%s", followed.String())
		}
		return nil
	})
	if _, err := deckctlAs(c, admin, "token", "revoke", "no-such-token"); err == nil {
		t.Fatal("revoking an unknown token succeeded")
	}
	testwait.For(t, 10*time.Second, func() error {
		if !strings.Contains(followed.String(), "TokenService/RevokeToken") {
			return fmt.Errorf("audit -f has not listed the new record:\n%s", followed.String())
		}
		return nil
	})
	if strings.Count(followed.String(), "NodeService/DeleteNode") != 1 {
		t.Errorf("audit -f printed a record twice:\n%s", followed.String())
	}
}

// The REST API with curl's view of the credential: deckctl credentials pem writes the PEM
// files, and an HTTP client with them lists the nodes; a viewer's cannot POST.
func TestCredentialsPEMForREST(t *testing.T) {
	c := testcluster.New(t, 1)
	dir := filepath.Join(t.TempDir(), "pem")
	out, err := deckctlAs(c, c.AdminConfig(), "credentials", "pem", "--dir", dir)
	if err != nil || !strings.Contains(out, "client.key") {
		t.Fatalf("credentials pem: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "client.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("client.key: %v %v", fi, err)
	}
	if _, err := deckctlAs(c, c.AdminConfig(), "credentials", "pem", "--dir", dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a second credentials pem into the same dir: %v", err)
	}
	hc := httpClientFromPEM(t, dir)
	resp, err := hc.Get("https://" + c.Addrs()[0] + "/v1/nodes")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !json.Valid(b) {
		t.Fatalf("GET /v1/nodes: %d %s", resp.StatusCode, b)
	}

	viewer := filepath.Join(t.TempDir(), "v.conf")
	if out, err := deckctlAs(c, c.AdminConfig(), "credentials", "create", "--name", "vic", "--role", "viewer", "--file", viewer); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	vdir := filepath.Join(t.TempDir(), "vpem")
	if _, err := deckctlAs(c, viewer, "credentials", "pem", "--dir", vdir); err != nil {
		t.Fatal(err)
	}
	resp, err = httpClientFromPEM(t, vdir).Post("https://"+c.Addrs()[0]+"/v1/tokens", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "ERROR_REASON_PERMISSION_DENIED") {
		t.Fatalf("viewer POST /v1/tokens: %d %s", resp.StatusCode, b)
	}
}

// httpClientFromPEM is curl --cacert ca.crt --cert client.crt --key client.key.
func httpClientFromPEM(t *testing.T, dir string) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("ca.crt holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

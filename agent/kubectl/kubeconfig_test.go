package kubectl_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/agent/kubectl"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func csrFor(t *testing.T, key crypto.Signer, cn string, orgs ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rsaCA is a CA as kubeadm makes it by default: RSA 2048, the key in PKCS#1.
func rsaCA(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kubernetes"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// verify checks a user certificate the way the API server does: it chains to the CA for
// client auth; and returns it.
func verify(t *testing.T, caPEM, certPEM []byte, at time.Time) *x509.Certificate {
	t.Helper()
	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("bad CA PEM")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: at}); err != nil {
		t.Fatalf("the certificate does not verify against the cluster CA for client auth: %v", err)
	}
	return cert
}

func TestSignUserCSR(t *testing.T) {
	ec, err := pki.NewCA("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	rsaCert, rsaKey := rsaCA(t)
	now := time.Now()
	for name, ca := range map[string][2][]byte{"ecdsa CA": {ec.CertPEM, ec.KeyPEM}, "rsa CA (kubeadm's default)": {rsaCert, rsaKey}} {
		t.Run(name, func(t *testing.T) {
			key := p256(t)
			certPEM, notAfter, err := kubectl.SignUserCSR(ca[0], ca[1], csrFor(t, key, "alice", "kubeadm:cluster-admins"), "alice", []string{"kubeadm:cluster-admins"}, 2*time.Hour, now)
			if err != nil {
				t.Fatal(err)
			}
			cert := verify(t, ca[0], certPEM, now)
			if cert.Subject.CommonName != "alice" || !slices.Equal(cert.Subject.Organization, []string{"kubeadm:cluster-admins"}) {
				t.Fatalf("subject %v", cert.Subject)
			}
			if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
				t.Fatal("the certificate is not for the CSR's key")
			}
			// A certificate keeps whole seconds.
			near := func(d, want time.Duration) bool { return d > want-time.Second && d < want+time.Second }
			if !cert.NotAfter.Equal(notAfter) || !near(cert.NotAfter.Sub(now), 2*time.Hour) || !near(now.Sub(cert.NotBefore), 5*time.Minute) {
				t.Fatalf("valid %v to %v, want now-5m to now+2h (reported %v)", cert.NotBefore, cert.NotAfter, notAfter)
			}
			if cert.IsCA || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
				t.Fatalf("not a plain client certificate: CA %v, EKU %v", cert.IsCA, cert.ExtKeyUsage)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now.Add(3 * time.Hour)}); err == nil {
				t.Fatal("verified past its lifetime")
			}
		})
	}

	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	badSig := csrFor(t, p256(t), "alice")
	blk, _ := pem.Decode(badSig)
	blk.Bytes[len(blk.Bytes)-3] ^= 0xff // inside the signature, the last field
	badSig = pem.EncodeToMemory(blk)
	for name, c := range map[string]struct {
		csr    []byte
		groups []string
		says   string
	}{
		"another user":            {csrFor(t, p256(t), "mallory"), nil, `asks for user "mallory"`},
		"more groups":             {csrFor(t, p256(t), "alice", "system:masters"), nil, "asks for groups"},
		"admin asked, view given": {csrFor(t, p256(t), "alice", "kubeadm:cluster-admins"), []string{}, "asks for groups"},
		"a bad signature":         {badSig, nil, "certificate request"},
		"an RSA-1024 key":         {csrFor(t, rsa1024, "alice"), nil, "RSA key of 1024 bits"},
		"no PEM":                  {[]byte("hello"), nil, "not a PEM CERTIFICATE REQUEST"},
	} {
		if _, _, err := kubectl.SignUserCSR(ec.CertPEM, ec.KeyPEM, c.csr, "alice", c.groups, time.Hour, now); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: want an error saying %q, got %v", name, c.says, err)
		}
	}
	if _, _, err := kubectl.SignUserCSR(ec.CertPEM, rsaKey, csrFor(t, p256(t), "alice"), "alice", nil, time.Hour, now); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("a key of another CA: %v", err)
	}
}

func signSpec(csr []byte, name string, groups []string, view bool) *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeconfigSign{KubeconfigSign: &taskv1.KubeconfigSignSpec{
		CsrPem: string(csr), Name: name, Groups: groups, Ttl: durationpb.New(time.Hour), ViewBinding: view}}}
}

func TestKubeconfigSignOnAControlPlane(t *testing.T) {
	dir, cp, ws := simCluster(t, "w-1")
	caPEM, err := os.ReadFile(filepath.Join(cp.root, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	res, l := cp.run(t, "sign-view", signSpec(csrFor(t, p256(t), "bob"), "bob", nil, true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		t.Fatalf("sign: %v\n%s", res, l)
	}
	out := res.GetOutputs()
	cert := verify(t, caPEM, []byte(out["certificate"]), time.Now())
	if cert.Subject.CommonName != "bob" || len(cert.Subject.Organization) != 0 {
		t.Fatalf("subject %v", cert.Subject)
	}
	if out["ca"] != string(caPEM) || out["server"] != "https://10.250.0.10:6443" || out["expires"] != cert.NotAfter.UTC().Format(time.RFC3339) {
		t.Fatalf("outputs: ca matches %v, server %q, expires %q", out["ca"] == string(caPEM), out["server"], out["expires"])
	}
	for k, v := range out {
		if strings.Contains(v, "PRIVATE KEY") {
			t.Fatalf("output %s holds a private key", k)
		}
	}
	if n := simrecords.Count(records(t, dir), simrecords.KubectlBindView, "deckhand:view:bob"); n != 1 || len(res.GetChanges()) != 1 {
		t.Fatalf("want one view binding created and one change, got %d bindings, changes %v", n, res.GetChanges())
	}
	// Again: the binding is there, nothing changes.
	res, l = cp.run(t, "sign-view-again", signSpec(csrFor(t, p256(t), "bob"), "bob", nil, true))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 || !strings.Contains(l, "already binds view") {
		t.Fatalf("second sign: %v\n%s", res, l)
	}
	if n := simrecords.Count(records(t, dir), simrecords.KubectlBindView, "deckhand:view:bob"); n != 1 {
		t.Fatalf("the binding was created %d times", n)
	}
	// An admin certificate binds nothing.
	res, _ = cp.run(t, "sign-admin", signSpec(csrFor(t, p256(t), "carol", "kubeadm:cluster-admins"), "carol", []string{"kubeadm:cluster-admins"}, false))
	if res.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED || len(res.GetChanges()) != 0 {
		t.Fatalf("admin sign: %v", res)
	}
	// A CSR for someone else is refused, and no certificate comes out.
	res, _ = cp.run(t, "sign-other", signSpec(csrFor(t, p256(t), "mallory"), "bob", nil, false))
	wantFailed(t, "a CSR for another user", res, "BAD_CSR", `"mallory"`)
	if res.GetOutputs()["certificate"] != "" {
		t.Fatal("a refused CSR returned a certificate")
	}
	// A refused CSR asking for a view binding creates no binding.
	res, _ = cp.run(t, "sign-other-view", signSpec(csrFor(t, p256(t), "mallory"), "dave", nil, true))
	wantFailed(t, "a CSR for another user, with a view binding", res, "BAD_CSR", `"mallory"`)
	if n := simrecords.Count(records(t, dir), simrecords.KubectlBindView, "deckhand:view:dave"); n != 0 {
		t.Fatalf("a refused request created the view binding %d times", n)
	}
	// A worker has no CA key.
	res, _ = ws["w-1"].run(t, "sign-worker", signSpec(csrFor(t, p256(t), "bob"), "bob", nil, false))
	wantFailed(t, "sign on a worker", res, "NOT_A_CONTROL_PLANE", "ca.key")
	// Bad input is refused on the node too, whatever the API let through.
	res, _ = cp.run(t, "sign-system", signSpec(csrFor(t, p256(t), "system:admin"), "system:admin", nil, false))
	wantFailed(t, "a system: user", res, "INVALID_ARGUMENT", "system:")
}

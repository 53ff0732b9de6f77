package kubeuser_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/kubeuser"
)

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alice": true, "deckhand-admin-admin": true, "alice@example.com": true, "ops:oncall_1": true, strings.Repeat("a", 128): true,
		"": false, "Alice": false, "alice smith": false, "-alice": false, "alice-": false, "system:admin": false,
		strings.Repeat("a", 129): false, "a/b": false, "al\nice": false,
	} {
		if err := kubeuser.CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

func TestNameFrom(t *testing.T) {
	for in, want := range map[string]string{"admin": "admin", "Alice Smith": "alice-smith", "-x-": "x", "ops@Example.com": "ops@example.com", "ü": ""} {
		if got := kubeuser.NameFrom(in); got != want {
			t.Errorf("NameFrom(%q) = %q, want %q", in, got, want)
		}
		if got := kubeuser.NameFrom(in); got != "" && kubeuser.CheckName("deckhand-admin-"+got) != nil {
			t.Errorf("NameFrom(%q) = %q does not make a valid user name", in, got)
		}
	}
}

func FuzzCheckCSR(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice", Organization: []string{kubeuser.AdminGroup}}}, key)
	if err != nil {
		f.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, err := kubeuser.CheckCSR(good, "alice", []string{kubeuser.AdminGroup}); err != nil {
		f.Fatalf("a good CSR is refused: %v", err)
	}
	f.Add(good)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := kubeuser.CheckCSR(b, "alice", []string{kubeuser.AdminGroup})
		if err == nil && (csr.Subject.CommonName != "alice" || csr.CheckSignature() != nil) {
			t.Fatalf("accepted a CSR for %q (signature %v)", csr.Subject.CommonName, csr.CheckSignature())
		}
	})
}

package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestHashIsSHA256OfSubjectPublicKeyInfo(t *testing.T) {
	ca, err := NewCA("t")
	if err != nil {
		t.Fatal(err)
	}
	// The same computation kubeadm documents: openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum
	der, _ := x509.MarshalPKIXPublicKey(ca.Cert.PublicKey)
	sum := sha256.Sum256(der)
	if want := "sha256:" + hex.EncodeToString(sum[:]); ca.Hash() != want {
		t.Fatalf("hash %s, want %s", ca.Hash(), want)
	}
	if _, err := ParseHash(ca.Hash()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "sha256:", "md5:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("z", 64), "sha256:" + strings.Repeat("a", 63)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

func TestSignCSRTakesIdentityFromEnrollmentNotRequester(t *testing.T) {
	ca, _ := NewCA("t")
	_, csrPEM, err := NewKeyAndCSR("admin") // a requester asking to be someone else
	if err != nil {
		t.Fatal(err)
	}
	certPEM, serial, err := ca.SignCSR(csrPEM, "node-1", RoleAgent, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ParseCert(certPEM)
	id, err := IdentityOf(cert)
	if err != nil || id.Name != "node-1" || id.Role != RoleAgent || id.Serial != serial {
		t.Fatalf("identity %+v, %v", id, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	// A tampered CSR is refused.
	b, _ := pem.Decode(csrPEM)
	b.Bytes[len(b.Bytes)-3] ^= 0xff
	if _, _, err := ca.SignCSR(pem.EncodeToMemory(b), "node-1", RoleAgent, time.Hour); err == nil {
		t.Fatal("tampered CSR signed")
	}
	if _, _, err := ca.SignCSR([]byte("junk"), "node-1", RoleAgent, time.Hour); err == nil {
		t.Fatal("junk signed")
	}
}

func TestVerifyPinned(t *testing.T) {
	ca, _ := NewCA("t")
	other, _ := NewCA("other")
	serving, _ := ca.IssueServing("r1", []string{"10.250.0.1"})
	state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{serving.Leaf, ca.Cert}}
	if err := VerifyPinned(ca.Hash(), nil)(state); err != nil {
		t.Fatalf("right pin refused: %v", err)
	}
	err := VerifyPinned(other.Hash(), nil)(state)
	if err == nil || !strings.Contains(err.Error(), "--ca-cert-hash") {
		t.Fatalf("wrong pin: %v", err)
	}
	// A chain that carries the pinned CA but a leaf it did not sign is refused.
	forged, _ := other.IssueServing("r1", nil)
	if err := VerifyPinned(ca.Hash(), nil)(tls.ConnectionState{PeerCertificates: []*x509.Certificate{forged.Leaf, ca.Cert}}); err == nil {
		t.Fatal("leaf from another CA accepted under the pinned CA")
	}
	if !IsReplica(serving.Leaf) {
		t.Fatal("serving certificate lacks the replica role")
	}
	if len(serving.Leaf.IPAddresses) < 2 || serving.Leaf.IPAddresses[0].String() != "10.250.0.1" {
		t.Fatalf("SANs: %v", serving.Leaf.IPAddresses)
	}
}

func FuzzParseHash(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add("sha256:")
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := ParseHash(s); err == nil && (len(h) != 71 || !strings.HasPrefix(h, "sha256:")) {
			t.Fatalf("accepted %q as %q", s, h)
		}
	})
}

// A short-lived certificate (tests of renewal, short user credentials) must not spend most of
// its lifetime before it was issued: the clock-skew allowance shrinks with the validity.
func TestValidityWindow(t *testing.T) {
	ca, err := NewCA("t")
	if err != nil {
		t.Fatal(err)
	}
	_, csr, err := NewKeyAndCSR("n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ validity, backdate time.Duration }{
		{4 * time.Second, time.Second},
		{time.Hour, time.Minute},
		{ClientValidity, time.Minute},
	} {
		certPEM, _, err := ca.SignCSR(csr, "n", RoleAgent, tc.validity)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := ParseCert(certPEM)
		if got := cert.NotAfter.Sub(cert.NotBefore); got != tc.validity+tc.backdate {
			t.Errorf("validity %v: lifetime %v, want %v", tc.validity, got, tc.validity+tc.backdate)
		}
	}
	if _, _, err := ca.SignCSR(csr, "n", RoleAgent, 0); err == nil {
		t.Error("signed a certificate with no validity")
	}
}

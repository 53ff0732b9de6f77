// Package pki is Deckhand's certificate authority: an ECDSA P-256 CA, serving certificates
// for controller replicas, client certificates whose Organization carries the role, CSR
// signing for agents, and the kubeadm-style CA pin (sha256 of the CA's SubjectPublicKeyInfo).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Roles carried in a certificate's Organization.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
	RoleAgent    = "agent"
	// RoleReplica is a controller replica talking to another (raft, forwarding, sessions).
	RoleReplica = "replica"
)

// ValidRole reports whether r is a role a client certificate may carry.
func ValidRole(r string) bool {
	switch r {
	case RoleAdmin, RoleOperator, RoleViewer, RoleAgent, RoleReplica:
		return true
	}
	return false
}

// Validity periods.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	ServingValidity = 365 * 24 * time.Hour
	ClientValidity  = 365 * 24 * time.Hour
	// MinValidity is the shortest validity the CA issues.
	MinValidity = time.Second
	// maxBackdate covers clock skew between hosts: certificates start this much before
	// they are issued (less for very short validities, so their lifetime stays mostly ahead).
	maxBackdate = time.Minute
)

// backdate is how far before now a certificate of this validity starts.
func backdate(validity time.Duration) time.Duration {
	return min(maxBackdate, validity/4)
}

// CA is a certificate authority with its key.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA creates a self-signed CA.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"deckhand"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return LoadCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
}

// LoadCA parses a CA certificate and its key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate is not a CA")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("CA key: no PEM block")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// Pool is a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Hash is the kubeadm-style pin of the CA: "sha256:" + hex of its SubjectPublicKeyInfo.
func (ca *CA) Hash() string { return Hash(ca.Cert) }

// Hash pins a CA certificate.
func Hash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseHash validates a "sha256:<64 hex>" pin.
func ParseHash(s string) (string, error) {
	rest, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(rest) != 64 {
		return "", fmt.Errorf("%q is not a CA pin: want sha256: followed by 64 hex digits, as printed by deckctl token create", s)
	}
	if _, err := hex.DecodeString(rest); err != nil {
		return "", fmt.Errorf("%q is not a CA pin: %v", s, err)
	}
	return "sha256:" + strings.ToLower(rest), nil
}

// IssueServing issues a replica certificate: a server certificate for hosts (IPs or DNS
// names) that is also a client certificate with the replica role.
func (ca *CA) IssueServing(id string, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id, Organization: []string{RoleReplica}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ServingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	seen := map[string]bool{}
	for _, h := range append(hosts, "localhost", "127.0.0.1", "::1") {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	// The chain carries the CA so an enrolling agent can check it against its pin.
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// IssueClient issues a client certificate and key (PEM) for name with role.
func (ca *CA) IssueClient(name, role string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if !ValidRole(role) {
		return nil, nil, fmt.Errorf("unknown role %q", role)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := ca.sign(&key.PublicKey, name, role, validity)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// CheckCSR validates a PEM CSR the way SignCSR will, without signing it.
func CheckCSR(csrPEM []byte) error {
	_, err := parseCSR(csrPEM)
	return err
}

func parseCSR(csrPEM []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("bad signature: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("the key must be ECDSA P-256")
	}
	return pub, nil
}

// SignCSR signs a PEM CSR for name with role. The CSR's own subject is ignored: the
// identity comes from the enrollment, never from the requester.
func (ca *CA) SignCSR(csrPEM []byte, name, role string, validity time.Duration) (certPEM []byte, serialHex string, err error) {
	pub, err := parseCSR(csrPEM)
	if err != nil {
		return nil, "", err
	}
	der, err := ca.sign(pub, name, role, validity)
	if err != nil {
		return nil, "", err
	}
	cert, _ := x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), SerialHex(cert), nil
}

func (ca *CA) sign(pub crypto.PublicKey, name, role string, validity time.Duration) ([]byte, error) {
	if validity < MinValidity {
		return nil, fmt.Errorf("validity %v is shorter than %v", validity, MinValidity)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{role}},
		NotBefore:    now.Add(-backdate(validity)),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
}

// NewKeyAndCSR makes a P-256 key and a CSR for name (the agent side of enrollment).
func NewKeyAndCSR(name string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Identity is who a verified client certificate speaks for.
type Identity struct {
	Name   string
	Role   string
	Serial string
}

// IdentityOf reads the identity of a verified client certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	roles := "admin, operator, viewer, agent, replica"
	if len(cert.Subject.Organization) != 1 {
		return Identity{}, fmt.Errorf("certificate %q is signed by the controller CA but carries %d roles (O=%q); it must carry exactly one of %s: issue it again", cert.Subject.CommonName, len(cert.Subject.Organization), cert.Subject.Organization, roles)
	}
	if r := cert.Subject.Organization[0]; !ValidRole(r) {
		return Identity{}, fmt.Errorf("certificate %q is signed by the controller CA but its role %q is unknown; the roles are %s: issue it again with one of them", cert.Subject.CommonName, r, roles)
	}
	return Identity{Name: cert.Subject.CommonName, Role: cert.Subject.Organization[0], Serial: SerialHex(cert)}, nil
}

// SerialHex is a certificate's serial number in hex.
func SerialHex(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }

// ParseCert parses one PEM certificate.
func ParseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(b.Bytes)
}

// VerifyPinned returns a tls VerifyConnection func for a client that knows only the CA pin:
// the server must present, in its chain, a CA whose SPKI matches the pin and that signed
// the server's certificate. It returns the pinned CA through found.
func VerifyPinned(pin string, found func(*x509.Certificate)) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("controller sent no certificate")
		}
		for _, c := range cs.PeerCertificates[1:] {
			if !c.IsCA || Hash(c) != pin {
				continue
			}
			pool := x509.NewCertPool()
			pool.AddCert(c)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("controller certificate is not signed by the pinned CA: %w", err)
			}
			if found != nil {
				found(c)
			}
			return nil
		}
		got := "none"
		if n := len(cs.PeerCertificates); n > 1 {
			got = Hash(cs.PeerCertificates[n-1])
		}
		return fmt.Errorf("the controller's CA does not match --ca-cert-hash %s (it presents %s): check the hash printed by deckctl token create, or you may be talking to another controller", pin, got)
	}
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

// ReplicaTLS issues a replica certificate for id and hosts and returns the TLS configs a
// controller replica uses: server (verifies client certificates from this CA when given) and
// client (presents the replica certificate to peers, trusts only this CA).
func (ca *CA) ReplicaTLS(id string, hosts []string) (server, client *tls.Config, err error) {
	cert, err := ca.IssueServing(id, hosts)
	if err != nil {
		return nil, nil, err
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool(),
		MinVersion:   tls.VersionTLS13,
	}
	return server, client, nil
}

// IsReplica accepts a verified client certificate carrying the replica role.
func IsReplica(cert *x509.Certificate) bool {
	id, err := IdentityOf(cert)
	return err == nil && id.Role == RoleReplica
}

// PinnedTLS is the client TLS config of a caller that has no certificate yet and knows the
// controller only by its CA pin (enrollment, joining replicas).
func PinnedTLS(pin string) *tls.Config {
	return &tls.Config{
		// Chain verification is done by VerifyConnection against the pinned CA instead of
		// the system roots, exactly as kubeadm join does with --discovery-token-ca-cert-hash.
		InsecureSkipVerify: true, //nolint:gosec // see VerifyConnection
		VerifyConnection:   VerifyPinned(pin, nil),
		MinVersion:         tls.VersionTLS13,
	}
}

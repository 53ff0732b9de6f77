package kubectl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/kubeuser"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The cluster CA kubeadm writes on every control plane (joined ones get it through
// --upload-certs). The key never leaves the node: only certificates go out.
const (
	CACert = "/etc/kubernetes/pki/ca.crt"
	CAKey  = "/etc/kubernetes/pki/ca.key"
)

// userCertBackdate covers clock skew between the node and the API server's clients.
const userCertBackdate = 5 * time.Minute

// KubeconfigSign signs a user's certificate request with the cluster CA of this control
// plane, after checking that it asks for exactly the name and groups of the spec and is
// signed by an acceptable key; with view_binding it first makes sure the user is bound to
// the ClusterRole view. The outputs are public: the certificate, the CA certificate, the
// API server URL of the node's admin.conf and the expiry.
func KubeconfigSign(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetKubeconfigSign()
	name, groups, ttl := spec.GetName(), spec.GetGroups(), spec.GetTtl().AsDuration()
	if err := kubeuser.CheckName(name); err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give the Kubernetes user name the certificate is for", "name %v", err)
	}
	if err := kubeuser.CheckTTL(ttl); err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give the certificate's lifetime", "ttl %v", err)
	}
	if !h.Exists(CAKey) || !h.Exists(AdminConf) {
		return nil, tasks.Errorf("NOT_A_CONTROL_PLANE", "run the kubeconfig_sign task on a healthy control-plane node", "%s or %s is missing: this node is not an initialized control plane", CAKey, AdminConf)
	}
	caPEM, err := h.ReadFile(CACert)
	if err != nil {
		return nil, tasks.Errorf("NO_CLUSTER_CA", "check /etc/kubernetes/pki on the node", "read the cluster CA: %v", err)
	}
	keyPEM, err := h.ReadFile(CAKey)
	if err != nil {
		return nil, tasks.Errorf("NO_CLUSTER_CA", "check /etc/kubernetes/pki on the node", "read the cluster CA key: %v", err)
	}
	server, err := adminServer(h)
	if err != nil {
		return nil, tasks.Errorf("NO_API_SERVER", "check "+AdminConf+" on the node", "%v", err)
	}
	// The request is checked before anything changes on the cluster: a refused CSR creates
	// no view binding.
	if _, err := kubeuser.CheckCSR([]byte(spec.GetCsrPem()), name, groups); err != nil {
		return nil, tasks.Errorf("BAD_CSR", "send a CSR for exactly the name and groups asked for, signed by an ECDSA P-256/P-384 or RSA 2048+ key (deckctl kubeconfig makes one)", "%v", err)
	}
	if spec.GetViewBinding() {
		if err := bindView(ctx, h, e, name); err != nil {
			return nil, err
		}
	}
	if h.DryRun {
		e.Logf("would sign a certificate for user %s (groups %v) valid for %v", name, groups, ttl)
		return nil, nil
	}
	certPEM, notAfter, err := SignUserCSR(caPEM, keyPEM, []byte(spec.GetCsrPem()), name, groups, ttl, time.Now())
	if err != nil {
		var ce *csrError
		if errors.As(err, &ce) {
			return nil, tasks.Errorf("BAD_CSR", "send a CSR for exactly the name and groups asked for, signed by an ECDSA P-256/P-384 or RSA 2048+ key (deckctl kubeconfig makes one)", "%v", err)
		}
		return nil, tasks.Errorf("SIGN_FAILED", "check the cluster CA in /etc/kubernetes/pki on the node", "%v", err)
	}
	e.Logf("signed a certificate for user %s (groups %s), valid until %s", name, strings.Join(groups, ","), notAfter.UTC().Format(time.RFC3339))
	return map[string]string{"certificate": string(certPEM), "ca": string(caPEM), "server": server, "expires": notAfter.UTC().Format(time.RFC3339)}, nil
}

// bindView makes sure ClusterRoleBinding deckhand:view:USER binds the ClusterRole view to
// the user: created when missing, left alone when it does; one that binds something else is
// an error (a roleRef cannot change).
func bindView(ctx context.Context, h *host.Host, e *tasks.Emitter, user string) error {
	binding := kubeuser.ViewBindingName(user)
	out, err := h.Query(ctx, argv("get", "clusterrolebinding", binding, "--ignore-not-found", "-o", viewBindingJSONPath)...)
	if err != nil {
		return tasks.Errorf("BINDING_FAILED", "check the control plane's health (kubectl get --raw=/readyz on it)", "read clusterrolebinding %s: %s", binding, message(err))
	}
	got := strings.TrimSpace(string(out))
	want := "ClusterRole/view User/" + user
	switch {
	case got == want:
		e.Logf("clusterrolebinding %s already binds view to user %s", binding, user)
		return nil
	case got != "":
		return tasks.Errorf("BINDING_CONFLICT", "delete it (kubectl delete clusterrolebinding "+binding+") or choose another --name", "clusterrolebinding %s exists but binds %q, not %q", binding, got, want)
	}
	if err := h.Run(ctx, "bind the ClusterRole view to user "+user, argv("create", "clusterrolebinding", binding, "--clusterrole=view", "--user="+user)...); err != nil {
		return tasks.Errorf("BINDING_FAILED", "check the control plane's health (kubectl get --raw=/readyz on it)", "create clusterrolebinding %s: %s", binding, message(err))
	}
	return nil
}

// viewBindingJSONPath prints a binding as "KIND/ROLE SUBJECTKIND/NAME...".
const viewBindingJSONPath = `jsonpath={.roleRef.kind}/{.roleRef.name}{range .subjects[*]} {.kind}/{.name}{end}`

// adminServer is the API server URL of the node's admin.conf (the one kubeadm token create
// prints in its join command): its first "server:" line.
func adminServer(h *host.Host) (string, error) {
	b, err := h.ReadFile(AdminConf)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", AdminConf, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "server:"); ok {
			s = strings.Trim(strings.TrimSpace(s), `"'`)
			if strings.HasPrefix(s, "https://") && !strings.ContainsAny(s, " \t") {
				return s, nil
			}
		}
	}
	return "", fmt.Errorf("%s names no https API server", AdminConf)
}

// csrError is a certificate request that is refused.
type csrError struct{ msg string }

func (e *csrError) Error() string { return "certificate request: " + e.msg }

// SignUserCSR checks csrPEM (its signature, that its subject is exactly CN=name,
// O=groups, and its key) and signs a client certificate for it with the CA, valid from
// five minutes before now until now+ttl (or the CA's own end, whichever is first).
func SignUserCSR(caCertPEM, caKeyPEM, csrPEM []byte, name string, groups []string, ttl time.Duration, now time.Time) ([]byte, time.Time, error) {
	csr, err := kubeuser.CheckCSR(csrPEM, name, groups)
	if err != nil {
		return nil, time.Time{}, &csrError{err.Error()}
	}
	caCert, signer, err := loadClusterCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, time.Time{}, err
	}
	notAfter := now.Add(ttl).Truncate(time.Second) // a certificate keeps whole seconds
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, time.Time{}, err
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: name, Organization: slices.Clone(groups)},
		NotBefore:             now.Add(-userCertBackdate),
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, csr.PublicKey, signer)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), notAfter, nil
}

// loadClusterCA parses the cluster CA: kubeadm writes an RSA key (PKCS#1) by default, an
// ECDSA one with the PublicKeysECDSA gate or encryptionAlgorithm; PKCS#8 is read too.
func loadClusterCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("cluster CA certificate: not a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, errors.New("cluster CA certificate is not a CA")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New("cluster CA key: no PEM block")
	}
	var key any
	switch kb.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("cluster CA key: a %T cannot sign", key)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("cluster CA key does not match the CA certificate")
	}
	return cert, signer, nil
}

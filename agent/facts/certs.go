package facts

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"os"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
)

// certFile is a certificate kubeadm or the kubelet keeps: in a PEM file, or embedded in a
// kubeconfig (client-certificate-data).
type certFile struct {
	name, path string
	kubeconfig bool
	renewedBy  string
}

// KubeletClientCert is the kubelet's current client certificate (and key), which it rotates.
const KubeletClientCert = "/var/lib/kubelet/pki/kubelet-client-current.pem"

// certFiles are the certificates reported, named as `kubeadm certs check-expiration` names
// them; the kubelet's two are named kubelet-client and kubelet-serving.
var certFiles = []certFile{
	{name: "admin.conf", path: "/etc/kubernetes/admin.conf", kubeconfig: true, renewedBy: "kubeadm"},
	{name: "super-admin.conf", path: "/etc/kubernetes/super-admin.conf", kubeconfig: true, renewedBy: "kubeadm"},
	{name: "controller-manager.conf", path: "/etc/kubernetes/controller-manager.conf", kubeconfig: true, renewedBy: "kubeadm"},
	{name: "scheduler.conf", path: "/etc/kubernetes/scheduler.conf", kubeconfig: true, renewedBy: "kubeadm"},
	{name: "apiserver", path: "/etc/kubernetes/pki/apiserver.crt", renewedBy: "kubeadm"},
	{name: "apiserver-etcd-client", path: "/etc/kubernetes/pki/apiserver-etcd-client.crt", renewedBy: "kubeadm"},
	{name: "apiserver-kubelet-client", path: "/etc/kubernetes/pki/apiserver-kubelet-client.crt", renewedBy: "kubeadm"},
	{name: "front-proxy-client", path: "/etc/kubernetes/pki/front-proxy-client.crt", renewedBy: "kubeadm"},
	{name: "etcd-healthcheck-client", path: "/etc/kubernetes/pki/etcd/healthcheck-client.crt", renewedBy: "kubeadm"},
	{name: "etcd-peer", path: "/etc/kubernetes/pki/etcd/peer.crt", renewedBy: "kubeadm"},
	{name: "etcd-server", path: "/etc/kubernetes/pki/etcd/server.crt", renewedBy: "kubeadm"},
	{name: "ca", path: "/etc/kubernetes/pki/ca.crt"},
	{name: "etcd-ca", path: "/etc/kubernetes/pki/etcd/ca.crt"},
	{name: "front-proxy-ca", path: "/etc/kubernetes/pki/front-proxy-ca.crt"},
	{name: "kubelet-client", path: KubeletClientCert, renewedBy: "kubelet"},
	{name: "kubelet-serving", path: "/var/lib/kubelet/pki/kubelet.crt"},
}

// MaxCertificates bounds the certificates in a node's facts.
const MaxCertificates = 32

// maxCertFile bounds a certificate or kubeconfig file read.
const maxCertFile = 256 << 10

// certificates reads the certificates of certFiles the node has (a worker: the kubelet's).
// A file that is missing or holds no parsable certificate is left out.
func (c *Collector) certificates() []*agentv1.Certificate {
	var out []*agentv1.Certificate
	for _, f := range certFiles {
		b := c.readSmallFile(f.path, maxCertFile)
		if b == nil {
			continue
		}
		var der []byte
		if f.kubeconfig {
			der = kubeconfigCert(b)
		} else {
			der = firstCertificate(b)
		}
		if der == nil {
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		out = append(out, &agentv1.Certificate{
			Name: f.name, Path: f.path,
			NotBefore: timestamppb.New(cert.NotBefore), NotAfter: timestamppb.New(cert.NotAfter),
			Issuer: cleanString(cert.Issuer.CommonName), Subject: cleanString(cert.Subject.CommonName),
			Ca: cert.IsCA, RenewedBy: f.renewedBy, Serial: cert.SerialNumber.Text(16),
		})
		if len(out) == MaxCertificates {
			break
		}
	}
	return out
}

// firstCertificate is the DER of the first CERTIFICATE block of a PEM file (the kubelet's
// client file holds its key too, which is skipped).
func firstCertificate(b []byte) []byte {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes
		}
	}
}

// kubeconfigCert is the client certificate a kubeconfig embeds (the first user's
// client-certificate-data), read line by line: the rest of the file, its key included, is
// never parsed.
func kubeconfigCert(b []byte) []byte {
	for _, line := range bytes.Split(b, []byte("\n")) {
		v, ok := strings.CutPrefix(strings.TrimSpace(string(line)), "client-certificate-data:")
		if !ok {
			continue
		}
		pemBytes, err := base64.StdEncoding.DecodeString(strings.Trim(strings.TrimSpace(v), `"'`))
		if err != nil {
			return nil
		}
		return firstCertificate(pemBytes)
	}
	return nil
}

// kubeletRotates reads rotateCertificates from the kubelet's configuration file; known is
// false without the file. The kubelet's default, when the file leaves it out, is false.
func (c *Collector) kubeletRotates() (rotates, known bool) {
	b := c.readFile("/var/lib/kubelet/config.yaml")
	if b == nil {
		return false, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rotateCertificates:"); ok {
			return strings.TrimSpace(v) == "true", true
		}
	}
	return false, true
}

// readSmallFile reads host path p when it is a regular file of at most max bytes, else nil.
func (c *Collector) readSmallFile(p string, max int64) []byte {
	f, err := os.Open(c.hostPath(p))
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() > max {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil || int64(len(b)) > max {
		return nil
	}
	return b
}

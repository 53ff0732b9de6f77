package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/kubeuser"
	"github.com/deckhandhq/deckhand/internal/pki"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// kubeconfigWait is the least deckctl kubeconfig waits: a control plane signs (up to a
// minute when its agent is slow to take the task).
const kubeconfigWait = 90 * time.Second

// The kubeconfig file, as kubectl reads it (client-go's clientcmd v1 Config).
type kubeconfigFile struct {
	APIVersion     string              `json:"apiVersion"`
	Kind           string              `json:"kind"`
	Clusters       []kubeconfigCluster `json:"clusters"`
	Users          []kubeconfigUser    `json:"users"`
	Contexts       []kubeconfigContext `json:"contexts"`
	CurrentContext string              `json:"current-context"`
	Preferences    struct{}            `json:"preferences"`
}

type kubeconfigCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData string `json:"certificate-authority-data"`
	} `json:"cluster"`
}

type kubeconfigUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificateData string `json:"client-certificate-data"`
		ClientKeyData         string `json:"client-key-data"`
	} `json:"user"`
}

type kubeconfigContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

func newKubeconfigCmd(o *options) *cobra.Command {
	var name, role, file, contextName string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "kubeconfig [--name NAME] [--role admin|view] [--ttl 24h] [-o FILE] [--context-name NAME]",
		Short: "Print a kubeconfig for the Kubernetes cluster, with a new user certificate signed by its CA",
		Long: `Print a kubeconfig for the recorded Kubernetes cluster (admins only).

deckctl makes a new private key here and sends only a certificate request; a Ready
control-plane node signs it with the cluster CA. The cluster's CA key and admin.conf never
leave the node, and the private key never leaves this machine.

--role admin (the default) makes a cluster-admin (group kubeadm:cluster-admins); --role view
a read-only user (ClusterRoleBinding deckhand:view:NAME to the ClusterRole view). The server
is the cluster's controlPlaneEndpoint, else the API server of the signing control plane.
The certificate cannot be revoked before it expires: keep --ttl short.`,
		Example: `  # Use the cluster with kubectl for the next 24 hours:
  deckctl kubeconfig -o ~/.kube/deckhand.conf
  export KUBECONFIG=~/.kube/deckhand.conf
  kubectl get nodes

  # A read-only kubeconfig for a colleague, valid for a week:
  deckctl kubeconfig --name alice --role view --ttl 168h -o alice.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			groups := kubeuser.Groups(role)
			if groups == nil {
				return fmt.Errorf("--role %q: use admin (cluster-admin) or view (read-only)", role)
			}
			if err := kubeuser.CheckTTL(ttl); err != nil {
				return fmt.Errorf("--ttl %w", err)
			}
			if name == "" {
				var err error
				if name, err = o.defaultKubeUser(role); err != nil {
					return err
				}
			}
			if err := kubeuser.CheckName(name); err != nil {
				return fmt.Errorf("--name %w", err)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name, Organization: groups}}, key)
			if err != nil {
				return err
			}
			req := &apiv1.CreateKubeconfigRequest{Name: name, Role: apiv1.KubeconfigRole_KUBECONFIG_ROLE_ADMIN, Ttl: durationpb.New(ttl),
				CsrPem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
			if role == kubeuser.RoleView {
				req.Role = apiv1.KubeconfigRole_KUBECONFIG_ROLE_VIEW
			}
			var resp *apiv1.CreateKubeconfigResponse
			err = o.callFor(max(o.timeout, kubeconfigWait), func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err = apiv1.NewWorkflowServiceClient(cc).CreateKubeconfig(ctx, req)
				return err
			})
			if err != nil {
				return err
			}
			keyDER, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				return err
			}
			keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
			if err := checkIssued(resp, &key.PublicKey, name, groups); err != nil {
				return err
			}
			if contextName == "" {
				contextName = name + "@" + resp.GetClusterName()
			}
			b, err := renderKubeconfig(resp, name, contextName, keyPEM)
			if err != nil {
				return err
			}
			expires := resp.GetExpires().AsTime().Local().Format(time.RFC3339)
			if file == "" || file == "-" {
				_, err := o.out.Write(b)
				return err
			}
			if err := writePrivate(file, b); err != nil {
				return err
			}
			fmt.Fprintf(o.errOut, "wrote a kubeconfig for user %s (%s) on %s to %s, valid until %s\n", name, role, resp.GetServer(), file, expires)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "Kubernetes user name (the certificate's CN); default deckhand-ROLE-<your Deckhand credential's name>")
	f.StringVar(&role, "role", kubeuser.RoleAdmin, "admin (cluster-admin) or view (read-only)")
	f.DurationVar(&ttl, "ttl", kubeuser.DefaultTTL, fmt.Sprintf("how long the certificate is valid (%v to %v)", kubeuser.MinTTL, kubeuser.MaxTTL))
	// -o is a file here, not the output format of the other commands: a kubeconfig is YAML.
	f.StringVarP(&file, "output", "o", "", "write the kubeconfig to FILE (mode 0600) instead of stdout")
	f.StringVar(&contextName, "context-name", "", "name of the kubeconfig's context; default NAME@CLUSTER")
	return cmd
}

// defaultKubeUser is deckhand-ROLE-<the name of the caller's Deckhand credential>.
func (o *options) defaultKubeUser(role string) (string, error) {
	cfg, err := clientconfig.Load(o.config)
	if err != nil {
		return "", fmt.Errorf("%w (or pass --name)", err)
	}
	cert, err := pki.ParseCert([]byte(cfg.Certificate))
	if err != nil {
		return "", fmt.Errorf("config %s: certificate: %w (or pass --name)", o.config, err)
	}
	user := kubeuser.NameFrom(cert.Subject.CommonName)
	if user == "" {
		return "", fmt.Errorf("your credential's name %q makes no Kubernetes user name: pass --name", cert.Subject.CommonName)
	}
	return "deckhand-" + role + "-" + user, nil
}

// checkIssued checks the answer before it is written: the certificate is for this key and
// user, and chains to the CA the kubeconfig will trust.
func checkIssued(resp *apiv1.CreateKubeconfigResponse, pub *ecdsa.PublicKey, name string, groups []string) error {
	cert, err := pki.ParseCert([]byte(resp.GetCertificatePem()))
	if err != nil {
		return fmt.Errorf("the controller returned no usable certificate: %w", err)
	}
	if k, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(pub) || cert.Subject.CommonName != name {
		return errors.New("the controller returned a certificate for another key or user: not written")
	}
	// The groups are the rights: a view kubeconfig holding the admin group would be an admin's.
	if !slices.Equal(slices.Sorted(slices.Values(cert.Subject.Organization)), slices.Sorted(slices.Values(groups))) {
		return fmt.Errorf("the controller returned a certificate for groups %v, not the %v asked for: not written", cert.Subject.Organization, groups)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(resp.GetCaPem())) {
		return errors.New("the controller returned no cluster CA certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the certificate does not chain to the cluster CA: %w", err)
	}
	if resp.GetServer() == "" {
		return errors.New("the controller returned no API server address")
	}
	return nil
}

func renderKubeconfig(resp *apiv1.CreateKubeconfigResponse, user, contextName string, keyPEM []byte) ([]byte, error) {
	b64 := base64.StdEncoding.EncodeToString
	var cl kubeconfigCluster
	cl.Name = resp.GetClusterName()
	cl.Cluster.Server = resp.GetServer()
	cl.Cluster.CertificateAuthorityData = b64([]byte(resp.GetCaPem()))
	var u kubeconfigUser
	u.Name = user
	u.User.ClientCertificateData = b64([]byte(resp.GetCertificatePem()))
	u.User.ClientKeyData = b64(keyPEM)
	var c kubeconfigContext
	c.Name = contextName
	c.Context.Cluster, c.Context.User = cl.Name, user
	return yaml.Marshal(kubeconfigFile{APIVersion: "v1", Kind: "Config", Clusters: []kubeconfigCluster{cl}, Users: []kubeconfigUser{u},
		Contexts: []kubeconfigContext{c}, CurrentContext: contextName})
}

// writePrivate replaces path with data, mode 0600 from the start: it holds a private key.
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

package cli_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/sim/simrecords"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// parsedKubeconfig is a kubeconfig read the way kubectl reads it, without client-go: every
// field kubectl needs must be where it looks for it.
type parsedKubeconfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Clusters   []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server string `json:"server"`
			CAData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			CertData string `json:"client-certificate-data"`
			KeyData  string `json:"client-key-data"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	CurrentContext string         `json:"current-context"`
	Preferences    map[string]any `json:"preferences"`
}

// kubeconfigUser checks a kubeconfig's structure and that its user's certificate chains to
// caPEM for client auth with the key beside it; it returns the server and the certificate.
func kubeconfigUser(t *testing.T, b []byte, caPEM []byte) (string, *x509.Certificate) {
	t.Helper()
	var kc parsedKubeconfig
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		t.Fatalf("not a kubeconfig: %v", err)
	}
	if kc.APIVersion != "v1" || kc.Kind != "Config" || len(kc.Clusters) != 1 || len(kc.Users) != 1 || len(kc.Contexts) != 1 ||
		kc.CurrentContext != kc.Contexts[0].Name || kc.Contexts[0].Context.Cluster != kc.Clusters[0].Name || kc.Contexts[0].Context.User != kc.Users[0].Name {
		t.Fatalf("kubeconfig structure: %+v", kc)
	}
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("base64: %v", err)
		}
		return b
	}
	if got := dec(kc.Clusters[0].Cluster.CAData); string(got) != string(caPEM) {
		t.Fatalf("the kubeconfig trusts another CA than the cluster's:\n%s", got)
	}
	cert, err := pki.ParseCert(dec(kc.Users[0].User.CertData))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the user certificate does not chain to the cluster CA: %v", err)
	}
	kb, _ := pem.Decode(dec(kc.Users[0].User.KeyData))
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) || key.Curve != elliptic.P256() {
		t.Fatalf("the key is not the certificate's P-256 key: %v", err)
	}
	if kc.Users[0].Name != cert.Subject.CommonName {
		t.Fatalf("user %q holds a certificate for %q", kc.Users[0].Name, cert.Subject.CommonName)
	}
	return kc.Clusters[0].Cluster.Server, cert
}

func csrPEM(t *testing.T, cn string, orgs ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: orgs}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestKubeconfig(t *testing.T) {
	l := newLab(t, "node-1", "node-2")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, _, err := l.deckctl("kubeconfig"); err == nil || !strings.Contains(err.Error(), "NO_CLUSTER") {
		t.Fatalf("kubeconfig before a cluster exists: %v", err)
	}
	l.mustDeckctl(t, "apply", "-f", l.doc(t, 2, []string{"node-1"}, "node-2"))
	root := l.Agents["node-1"].Root
	caPEM, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	adminConf, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/admin.conf"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("admin by default, to a 0600 file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "kubeconfig")
		out, errOut, err := l.deckctl("kubeconfig", "-o", file)
		if err != nil || out != "" || !strings.Contains(errOut, "wrote a kubeconfig for user deckhand-admin-") {
			t.Fatalf("kubeconfig -o: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
		}
		st, err := os.Stat(file)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("the kubeconfig holds a private key but its mode is %v (%v)", st.Mode().Perm(), err)
		}
		b, _ := os.ReadFile(file)
		server, cert := kubeconfigUser(t, b, caPEM)
		// No controlPlaneEndpoint in the document: the control plane's own API server.
		if server == "" || !strings.Contains(string(adminConf), "server: "+server+"\n") {
			t.Fatalf("server %q is not the control plane's API server:\n%s", server, adminConf)
		}
		if !strings.HasPrefix(cert.Subject.CommonName, "deckhand-admin-") || !slices.Equal(cert.Subject.Organization, []string{"kubeadm:cluster-admins"}) {
			t.Fatalf("subject %v: want deckhand-admin-USER in kubeadm:cluster-admins", cert.Subject)
		}
		if d := time.Until(cert.NotAfter); d < 23*time.Hour || d > 24*time.Hour {
			t.Fatalf("expires in %v, want the default 24h", d)
		}
	})

	t.Run("view to stdout, with the binding made once", func(t *testing.T) {
		for range 2 {
			out, _, err := l.deckctl("kubeconfig", "--role", "view", "--name", "bob", "--ttl", "2h", "--context-name", "bob-ro")
			if err != nil {
				t.Fatalf("kubeconfig --role view: %v", err)
			}
			_, cert := kubeconfigUser(t, []byte(out), caPEM)
			if cert.Subject.CommonName != "bob" || len(cert.Subject.Organization) != 0 || !strings.Contains(out, "current-context: bob-ro") {
				t.Fatalf("subject %v (a viewer is in no group), or the context is not bob-ro:\n%s", cert.Subject, out)
			}
		}
		if n := simrecords.Count(l.records(t), simrecords.KubectlBindView, "deckhand:view:bob"); n != 1 {
			t.Fatalf("ClusterRoleBinding deckhand:view:bob created %d times, want once", n)
		}
	})

	good := func() *apiv1.CreateKubeconfigRequest {
		return &apiv1.CreateKubeconfigRequest{Name: "carol", Role: apiv1.KubeconfigRole_KUBECONFIG_ROLE_ADMIN, Ttl: durationpb.New(time.Hour),
			CsrPem: csrPEM(t, "carol", "kubeadm:cluster-admins")}
	}

	t.Run("admins only", func(t *testing.T) {
		for _, role := range []string{pki.RoleOperator, pki.RoleViewer} {
			_, err := apiv1.NewWorkflowServiceClient(l.ClientAs(role, "someone")).CreateKubeconfig(ctx, good())
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s: %v, want PermissionDenied", role, err)
			}
		}
		// Nor as a direct task, which operators could create.
		_, err := apiv1.NewTaskServiceClient(l.ClientAs(pki.RoleOperator, "someone")).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1",
			Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeconfigSign{KubeconfigSign: &taskv1.KubeconfigSignSpec{
				CsrPem: good().GetCsrPem(), Name: "carol", Groups: []string{"kubeadm:cluster-admins"}, Ttl: durationpb.New(time.Hour)}}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "deckctl kubeconfig") {
			t.Errorf("a direct kubeconfig_sign task: %v", err)
		}
		// Nor a manifest, which kubectl applies with the cluster's admin.conf.
		_, err = apiv1.NewTaskServiceClient(l.ClientAs(pki.RoleOperator, "someone")).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: "node-1",
			Spec: &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Manifest{Manifest: &taskv1.ManifestSpec{Name: "mine",
				Content: "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: me}\n"}}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "spec.manifest") {
			t.Errorf("a direct manifest task: %v", err)
		}
	})

	t.Run("bad requests name the field", func(t *testing.T) {
		for field, mutate := range map[string]func(r *apiv1.CreateKubeconfigRequest){
			"name":    func(r *apiv1.CreateKubeconfigRequest) { r.Name = "Carol Smith" },
			"role":    func(r *apiv1.CreateKubeconfigRequest) { r.Role = 99 },
			"ttl":     func(r *apiv1.CreateKubeconfigRequest) { r.Ttl = durationpb.New(9000 * time.Hour) },
			"csr_pem": func(r *apiv1.CreateKubeconfigRequest) { r.CsrPem = csrPEM(t, "mallory", "kubeadm:cluster-admins") },
		} {
			r := good()
			mutate(r)
			_, err := apiv1.NewWorkflowServiceClient(l.Client()).CreateKubeconfig(ctx, r)
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), field+": ") {
				t.Errorf("bad %s: %v", field, err)
			}
		}
		// A view request whose CSR asks for the admin group.
		r := good()
		r.Role = apiv1.KubeconfigRole_KUBECONFIG_ROLE_VIEW
		if _, err := apiv1.NewWorkflowServiceClient(l.Client()).CreateKubeconfig(ctx, r); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "csr_pem") {
			t.Errorf("view with an admin CSR: %v", err)
		}
	})

	t.Run("the API answers what a kubeconfig needs", func(t *testing.T) {
		resp, err := apiv1.NewWorkflowServiceClient(l.Client()).CreateKubeconfig(ctx, good())
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetNode() != "node-1" || resp.GetClusterName() == "" || resp.GetCaPem() != string(caPEM) || resp.GetTaskId() == "" ||
			resp.GetExpires().AsTime().Sub(time.Now()).Round(time.Minute) != time.Hour {
			t.Fatalf("response: node %q (want the control plane node-1), cluster %q, CA matches %v, task %q, expires %v",
				resp.GetNode(), resp.GetClusterName(), resp.GetCaPem() == string(caPEM), resp.GetTaskId(), resp.GetExpires().AsTime())
		}
	})

	// Nothing secret went through the controllers: no task record, result or log holds a
	// private key.
	tasks, err := apiv1.NewTaskServiceClient(l.Client()).ListTasks(ctx, &apiv1.ListTasksRequest{Node: "node-1", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	signs := 0
	for _, rec := range tasks.GetTasks() {
		if rec.GetTask().GetSpec().GetKubeconfigSign() == nil {
			continue
		}
		signs++
		logs, err := apiv1.NewTaskServiceClient(l.Client()).GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: rec.GetTask().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := protojson.Marshal(rec)
		lb, _ := protojson.Marshal(logs)
		if s := string(b) + string(lb); strings.Contains(s, "PRIVATE KEY") || !strings.Contains(s, "BEGIN CERTIFICATE") {
			t.Fatalf("task %s: a private key in the record or log, or no certificate in its result:\n%s", rec.GetTask().GetId(), s)
		}
	}
	if signs != 4 {
		t.Fatalf("%d signing tasks recorded, want 4 (one per kubeconfig)", signs)
	}
}

package kubeadmconfig

import (
	"bytes"
	"fmt"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	"regexp"
	"slices"
	"strings"
	"time"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"sigs.k8s.io/yaml"
)

// API versions of the documents this package writes.
const (
	KubeadmAPIVersion   = "kubeadm.k8s.io/v1beta4"
	KubeletAPIVersion   = "kubelet.config.k8s.io/v1beta1"
	KubeProxyAPIVersion = "kubeproxy.config.k8s.io/v1alpha1"
)

// InitTokenTTL is the lifetime of the bootstrap token kubeadm init mints (kubeadm's own
// default is 24 hours). No join uses it: each gets its own short-lived token from `kubeadm
// token create` (TokenCreateArgs), and the init workflow deletes the init's token when it
// ends; the short lifetime bounds it should that deletion fail.
const InitTokenTTL = 15 * time.Minute

var (
	tokenRE   = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	caHashRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	certKeyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// The documents, as the subset of kubeadm's v1beta4 types this package fills. Field
// names and nesting follow cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go; sigs.k8s.io/yaml
// writes the keys sorted, so the output is stable.
type (
	typeMeta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	initConfiguration struct {
		typeMeta
		BootstrapTokens  []bootstrapToken `json:"bootstrapTokens,omitempty"`
		LocalAPIEndpoint *apiEndpoint     `json:"localAPIEndpoint,omitempty"`
		NodeRegistration nodeRegistration `json:"nodeRegistration"`
		Patches          *patches         `json:"patches,omitempty"`
	}
	patches struct {
		Directory string `json:"directory"`
	}
	clusterConfiguration struct {
		typeMeta
		APIServer            *apiServer `json:"apiServer,omitempty"`
		ClusterName          string     `json:"clusterName"`
		ControlPlaneEndpoint string     `json:"controlPlaneEndpoint,omitempty"`
		ImageRepository      string     `json:"imageRepository"`
		KubernetesVersion    string     `json:"kubernetesVersion"`
		Networking           networking `json:"networking"`
	}
	apiServer struct {
		CertSANs  []string `json:"certSANs,omitempty"`
		ExtraArgs []arg    `json:"extraArgs,omitempty"`
	}
	kubeletConfiguration struct {
		typeMeta
		CgroupDriver string `json:"cgroupDriver"`
	}
	kubeProxyConfiguration struct {
		typeMeta
		Conntrack *kubeProxyConntrack `json:"conntrack,omitempty"`
		Mode      string              `json:"mode,omitempty"`
	}
	kubeProxyConntrack struct {
		MaxPerCore *int32 `json:"maxPerCore"`
	}
	joinConfiguration struct {
		typeMeta
		ControlPlane     *joinControlPlane `json:"controlPlane,omitempty"`
		Discovery        discovery         `json:"discovery"`
		NodeRegistration nodeRegistration  `json:"nodeRegistration"`
		Patches          *patches          `json:"patches,omitempty"`
	}
	bootstrapToken struct {
		Token string `json:"token,omitempty"`
		TTL   string `json:"ttl"`
	}
	apiEndpoint struct {
		AdvertiseAddress string `json:"advertiseAddress,omitempty"`
	}
	nodeRegistration struct {
		CRISocket        string `json:"criSocket"`
		KubeletExtraArgs []arg  `json:"kubeletExtraArgs,omitempty"`
		Name             string `json:"name"`
		// A pointer, so that no taints at all (taints: []) differs from kubeadm's
		// default (absent).
		Taints *[]taint `json:"taints,omitempty"`
	}
	arg struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	taint struct {
		Effect string `json:"effect"`
		Key    string `json:"key"`
		Value  string `json:"value,omitempty"`
	}
	networking struct {
		PodSubnet     string `json:"podSubnet,omitempty"`
		ServiceSubnet string `json:"serviceSubnet"`
	}
	joinControlPlane struct {
		CertificateKey   string       `json:"certificateKey,omitempty"`
		LocalAPIEndpoint *apiEndpoint `json:"localAPIEndpoint,omitempty"`
	}
	discovery struct {
		BootstrapToken bootstrapTokenDiscovery `json:"bootstrapToken"`
	}
	bootstrapTokenDiscovery struct {
		APIServerEndpoint string   `json:"apiServerEndpoint"`
		CACertHashes      []string `json:"caCertHashes"`
		Token             string   `json:"token"`
	}
)

// InitConfig renders the configuration file of `kubeadm init --config` for the first
// control plane n of cluster c: an InitConfiguration, a ClusterConfiguration, a
// KubeletConfiguration with c's cgroup driver and, when c sets any kube-proxy setting, a
// KubeProxyConfiguration with them. The InitConfiguration has one bootstrap token, valid
// InitTokenTTL: token when it is not empty, else one kubeadm generates. uploadCerts says the
// init will run with --upload-certs (InitArgs), which needs a control-plane endpoint for
// the other control planes to join through. The certificate key is left to kubeadm, which
// prints it.
func InitConfig(c Cluster, n Node, uploadCerts bool, token string) ([]byte, error) {
	if err := checkCluster(c); err != nil {
		return nil, err
	}
	if err := checkNode(n); err != nil {
		return nil, err
	}
	if uploadCerts && c.ControlPlaneEndpoint == "" {
		return nil, invalid("control_plane_endpoint", "", "is required to upload certificates",
			"other control planes join through a stable endpoint; set control_plane_endpoint (host:port of a load balancer or DNS name) or do not upload certificates")
	}
	ic := initConfiguration{
		typeMeta:         typeMeta{KubeadmAPIVersion, "InitConfiguration"},
		NodeRegistration: registration(c, n),
		Patches:          patchesOf(c),
	}
	if token != "" && !tokenRE.MatchString(token) {
		return nil, invalid("token", secretValue, "is not a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}", "generate one with kubeadm token generate, or leave it empty")
	}
	ic.BootstrapTokens = []bootstrapToken{{Token: token, TTL: InitTokenTTL.String()}}
	if n.AdvertiseAddress != "" {
		ic.LocalAPIEndpoint = &apiEndpoint{AdvertiseAddress: n.AdvertiseAddress}
	}
	cc := clusterConfiguration{
		typeMeta:             typeMeta{KubeadmAPIVersion, "ClusterConfiguration"},
		ClusterName:          c.ClusterName,
		ControlPlaneEndpoint: c.ControlPlaneEndpoint,
		ImageRepository:      c.Registry.ImageRepository,
		KubernetesVersion:    c.KubernetesVersion,
		Networking:           networking{PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet},
	}
	if len(c.CertSANs) > 0 {
		cc.APIServer = &apiServer{CertSANs: c.CertSANs}
	}
	if t := c.LoadBalancer.Type; t == lbconf.VIP || t == lbconf.Local {
		// Behind Deckhand's haproxy: out of its rotation before it stops serving.
		if cc.APIServer == nil {
			cc.APIServer = &apiServer{}
		}
		cc.APIServer.ExtraArgs = []arg{{Name: "shutdown-delay-duration", Value: lbconf.ShutdownDelay.String()}}
	}
	kc := kubeletConfiguration{
		typeMeta:     typeMeta{KubeletAPIVersion, "KubeletConfiguration"},
		CgroupDriver: c.CgroupDriver,
	}
	if c.KubeProxyMode == "" && c.ConntrackMaxPerCore == nil {
		return documents(ic, cc, kc)
	}
	kp := kubeProxyConfiguration{typeMeta: typeMeta{KubeProxyAPIVersion, "KubeProxyConfiguration"}, Mode: c.KubeProxyMode}
	if c.ConntrackMaxPerCore != nil {
		kp.Conntrack = &kubeProxyConntrack{MaxPerCore: c.ConntrackMaxPerCore}
	}
	return documents(ic, cc, kc, kp)
}

// JoinConfig renders the configuration file of `kubeadm join --config` for node n: a
// JoinConfiguration that discovers the cluster through apiServer (host:port; empty means
// c.ControlPlaneEndpoint) with the bootstrap token, pinning the cluster CA to caCertHash
// (sha256:<hex>, as kubeadm init and token create print it). A control-plane join
// (controlPlane) needs c.ControlPlaneEndpoint, advertises n.AdvertiseAddress when set, and
// decrypts the uploaded certificates with certificateKey (64 hex characters; empty when
// the certificates are copied to the node by other means). A worker join takes no
// certificate key.
func JoinConfig(c Cluster, n Node, controlPlane bool, apiServer, token, caCertHash, certificateKey string) ([]byte, error) {
	if err := checkCluster(c); err != nil {
		return nil, err
	}
	if err := checkNode(n); err != nil {
		return nil, err
	}
	if controlPlane && c.ControlPlaneEndpoint == "" {
		return nil, invalid("control_plane_endpoint", "", "is required to join a control plane",
			"kubeadm refuses to add a control plane to a cluster without a stable control-plane endpoint; set the one the cluster was initialized with")
	}
	if apiServer == "" {
		apiServer = c.ControlPlaneEndpoint
	}
	if apiServer == "" {
		return nil, invalid("control_plane_endpoint", "", "is required to join a node",
			"give the API server's host:port, e.g. 10.0.0.10:6443")
	}
	if err := checkHostPort("api_server", apiServer); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, invalid("token", "", "is required", "mint one on a control plane with kubeadm token create")
	}
	if !tokenRE.MatchString(token) {
		return nil, invalid("token", secretValue, "is not a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}", "use the token kubeadm init or kubeadm token create printed")
	}
	if !caHashRE.MatchString(caCertHash) {
		return nil, invalid("ca_cert_hash", caCertHash, "is not sha256:<64 lower-case hex digits>",
			"use the --discovery-token-ca-cert-hash that kubeadm init or kubeadm token create --print-join-command printed")
	}
	if certificateKey != "" {
		if !controlPlane {
			return nil, invalid("certificate_key", secretValue, "is only used to join a control plane", "leave it empty for a worker")
		}
		if !certKeyRE.MatchString(certificateKey) {
			return nil, invalid("certificate_key", secretValue, "is not 64 lower-case hex digits", "use the key kubeadm init phase upload-certs --upload-certs printed")
		}
	}
	jc := joinConfiguration{
		typeMeta: typeMeta{KubeadmAPIVersion, "JoinConfiguration"},
		Discovery: discovery{BootstrapToken: bootstrapTokenDiscovery{
			APIServerEndpoint: apiServer,
			CACertHashes:      []string{caCertHash},
			Token:             token,
		}},
		NodeRegistration: registration(c, n),
		Patches:          patchesOf(c),
	}
	if controlPlane {
		jc.ControlPlane = &joinControlPlane{CertificateKey: certificateKey}
		if n.AdvertiseAddress != "" {
			jc.ControlPlane.LocalAPIEndpoint = &apiEndpoint{AdvertiseAddress: n.AdvertiseAddress}
		}
	}
	return documents(jc)
}

// patchesOf is the patches setting of c: PatchesDir when c has patches.
func patchesOf(c Cluster) *patches {
	if len(c.Patches) == 0 {
		return nil
	}
	return &patches{Directory: PatchesDir}
}

// registration is the nodeRegistration of n in cluster c: its address goes to the kubelet
// as --node-ip and node labels as --node-labels (v1beta4's list form of kubeletExtraArgs),
// sorted by key, then the cluster's and the node's extra flags (the node's win), sorted by
// name.
func registration(c Cluster, n Node) nodeRegistration {
	r := nodeRegistration{Name: n.Name, CRISocket: n.CRISocket}
	if n.AdvertiseAddress != "" {
		// Without it the kubelet registers the address its host name resolves to, else
		// the default route's interface's: on a host with several networks (a Vagrant
		// box's NAT and host-only ones) that is one the other nodes cannot reach.
		r.KubeletExtraArgs = append(r.KubeletExtraArgs, arg{Name: "node-ip", Value: n.AdvertiseAddress})
	}
	if len(n.Labels) > 0 {
		keys := make([]string, 0, len(n.Labels))
		for k := range n.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		pairs := make([]string, len(keys))
		for i, k := range keys {
			pairs[i] = k + "=" + n.Labels[k]
		}
		r.KubeletExtraArgs = append(r.KubeletExtraArgs, arg{Name: "node-labels", Value: strings.Join(pairs, ",")})
	}
	r.KubeletExtraArgs = append(r.KubeletExtraArgs, mergedKubeletArgs(c.KubeletExtraArgs, n.KubeletExtraArgs)...)
	if len(n.Taints) > 0 || n.NoTaints {
		ts := []taint{}
		for _, t := range n.Taints {
			ts = append(ts, taint{Key: t.GetKey(), Value: t.GetValue(), Effect: t.GetEffect()})
		}
		r.Taints = &ts
	}
	return r
}

// checkCluster and checkNode reject a Cluster or Node that did not come from ParseCluster
// or ParseNode (e.g. a zero value), by running the same checks on it again.
func checkCluster(c Cluster) error {
	if c.KubernetesVersion == "" || c.ServiceSubnet == "" || c.ClusterName == "" || c.CgroupDriver == "" || c.Registry.ImageRepository == "" {
		return fmt.Errorf("kubeadm config: cluster settings are incomplete: build them with ParseCluster")
	}
	_, err := ParseCluster(c.spec())
	return err
}

func checkNode(n Node) error {
	if n.CRISocket == "" {
		return fmt.Errorf("kubeadm config: node settings are incomplete: build them with ParseNode")
	}
	_, err := ParseNode(n.spec())
	return err
}

// documents renders each value as one YAML document, separated by "---".
func documents(docs ...any) ([]byte, error) {
	var b bytes.Buffer
	for i, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("kubeadm config: render %T: %w", d, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// spec converts c back to the ClusterSpec it was parsed from (defaults filled in).
func (c Cluster) spec() *taskv1.ClusterSpec {
	return &taskv1.ClusterSpec{
		KubernetesVersion:    c.KubernetesVersion,
		ControlPlaneEndpoint: c.ControlPlaneEndpoint,
		PodSubnet:            c.PodSubnet,
		ServiceSubnet:        c.ServiceSubnet,
		ClusterName:          c.ClusterName,
		CgroupDriver:         c.CgroupDriver,
		KubeProxy:            c.kubeProxySpec(),
		ApiServerCertSans:    c.CertSANs,
		KubeletExtraArgs:     c.KubeletExtraArgs,
		Patches:              c.patchSpecs(),
		Registry: &taskv1.RegistrySettings{
			ImageRepository:    c.Registry.ImageRepository,
			Mirrors:            c.Registry.Mirrors,
			InsecureRegistries: c.Registry.Insecure,
		},
	}
}

func (c Cluster) patchSpecs() []*taskv1.KubeadmPatch {
	var out []*taskv1.KubeadmPatch
	for _, p := range c.Patches {
		out = append(out, &taskv1.KubeadmPatch{Target: p.Target, Type: p.Type, Patch: p.Patch})
	}
	return out
}

func (c Cluster) kubeProxySpec() *taskv1.KubeProxySettings {
	if c.KubeProxyMode == "" && c.ConntrackMaxPerCore == nil {
		return nil
	}
	return &taskv1.KubeProxySettings{Mode: c.KubeProxyMode, ConntrackMaxPerCore: c.ConntrackMaxPerCore}
}

// spec converts n back to the NodeSpec it was parsed from (defaults filled in).
func (n Node) spec() *taskv1.NodeSpec {
	return &taskv1.NodeSpec{
		Name:             n.Name,
		AdvertiseAddress: n.AdvertiseAddress,
		CriSocket:        n.CRISocket,
		Labels:           n.Labels,
		Taints:           n.Taints,
		NoTaints:         n.NoTaints,
		KubeletExtraArgs: n.KubeletExtraArgs,
	}
}

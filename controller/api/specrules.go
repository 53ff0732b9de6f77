package api

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/containerdrepo"
	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/kubepkgs"
	"github.com/deckhandhq/deckhand/internal/kubeuser"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	"github.com/deckhandhq/deckhand/internal/manifests"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/safetext"
	"github.com/deckhandhq/deckhand/internal/taskkinds"
	"github.com/deckhandhq/deckhand/internal/tasksecrets"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Limits of a task spec's lists, checked at the edge. A spec that exceeds one is refused
// with InvalidArgument naming the field.
const (
	MaxMirrors            = 16                       // registry.mirrors
	MaxInsecureRegistries = 16                       // registry.insecure_registries
	MaxImages             = 256                      // images.images
	MaxIgnoredChecks      = 64                       // preflight.ignore
	MaxExtraPorts         = 64                       // preflight.extra_ports, preflight.network_ports
	MaxTrustedSources     = 4                        // preflight.trusted_sources: a dual-stack pod subnet is two
	MaxHealthNodes        = taskkinds.MaxHealthNodes // cluster_health.nodes
	MaxLabels             = 64                       // node.labels
	MaxTaints             = 32                       // node.taints
	MaxKubeletArgs        = kubeadmconfig.MaxKubeletArgs
	MaxCertSANs           = kubeadmconfig.MaxCertSANs
	MaxPatches            = kubeadmconfig.MaxPatches
	MaxPatchBytes         = kubeadmconfig.MaxPatchBytes
	MaxJournalLines       = 100_000   // diagnostics.journal_lines
	MaxDigests            = 8         // sha256 maps
	MaxGeneration         = 1<<53 - 1 // network.generation, load_balancer.generation
	MaxManifestBytes      = manifests.MaxBytes
)

// fieldRule checks one field of a task spec. check is nil for a field every value of which
// is fine (a bool); why then says so. A message field is walked into after its check.
type fieldRule struct {
	check func(path string, v protoreflect.Value) error
	why   string
	// secret: the check never echoes the value (secretStr). A field marked secret in the
	// proto (internal/tasksecrets) must have such a rule; walkSpec enforces it.
	secret bool
}

var (
	tokenRE     = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	tokenIDRE   = regexp.MustCompile(`^[a-z0-9]{6}$`)
	caHashRE    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hex64RE     = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	checkNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
)

var (
	snapshotNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sha256HexRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func anyValue(why string) fieldRule { return fieldRule{why: why} }

func rule(f func(path string, v protoreflect.Value) error) fieldRule { return fieldRule{check: f} }

// nested: a message field; its own fields have rules.
var nested = rule(func(string, protoreflect.Value) error { return nil })

// generation is a list's order (a network's routes, a load balancer's API servers): a store
// revision, which JSON tools must carry exactly.
var generation = rule(func(path string, v protoreflect.Value) error {
	if v.Uint() > MaxGeneration {
		return &fieldError{path, fmt.Sprintf("%d: give a store revision, at most %d (it must survive JSON tools)", v.Uint(), uint64(MaxGeneration))}
	}
	return nil
})

// checkedBy marks a field that a message-level check (messageRules) validates as a whole,
// because its rules depend on the other fields (subnets that must not overlap, ...).
func checkedBy(what string) fieldRule {
	return fieldRule{check: func(string, protoreflect.Value) error { return nil }, why: "checked by " + what}
}

func enumDefined(path string, v protoreflect.Value, ed protoreflect.EnumDescriptor) error {
	if ed.Values().ByNumber(v.Enum()) == nil {
		var names []string
		for i := 1; i < ed.Values().Len(); i++ {
			names = append(names, string(ed.Values().Get(i).Name()))
		}
		return &fieldError{path, fmt.Sprintf("%d is not a known value: use one of %s", v.Enum(), strings.Join(names, ", "))}
	}
	return nil
}

func enumRule(ed protoreflect.EnumDescriptor) fieldRule {
	return rule(func(path string, v protoreflect.Value) error { return enumDefined(path, v, ed) })
}

func str(f func(path, s string) error) fieldRule {
	return rule(func(path string, v protoreflect.Value) error { return f(path, v.String()) })
}

func strList(max int, each func(path, s string) error) fieldRule {
	return rule(func(path string, v protoreflect.Value) error {
		l := v.List()
		if l.Len() > max {
			return &fieldError{path, fmt.Sprintf("has %d entries; at most %d are allowed", l.Len(), max)}
		}
		if each == nil {
			return nil
		}
		for i := range l.Len() {
			if err := each(fmt.Sprintf("%s[%d]", path, i), l.Get(i).String()); err != nil {
				return err
			}
		}
		return nil
	})
}

func listMax(max int) fieldRule {
	return rule(func(path string, v protoreflect.Value) error {
		if n := v.List().Len(); n > max {
			return &fieldError{path, fmt.Sprintf("has %d entries; at most %d are allowed", n, max)}
		}
		return nil
	})
}

func mapMax(max int) fieldRule {
	return rule(func(path string, v protoreflect.Value) error {
		if n := v.Map().Len(); n > max {
			return &fieldError{path, fmt.Sprintf("has %d entries; at most %d are allowed", n, max)}
		}
		return nil
	})
}

// digests checks a map of SHA-256 digests: keys by key, values 64 hex digits.
func digests(key func(path, k string) error) fieldRule {
	return rule(func(path string, v protoreflect.Value) error {
		m := v.Map()
		if m.Len() > MaxDigests {
			return &fieldError{path, fmt.Sprintf("has %d entries; at most %d are allowed", m.Len(), MaxDigests)}
		}
		var err error
		m.Range(func(k protoreflect.MapKey, d protoreflect.Value) bool {
			p := fmt.Sprintf("%s[%q]", path, k.String())
			if err = key(p, k.String()); err == nil && !hex64RE.MatchString(d.String()) {
				err = &fieldError{p, "is not a SHA-256 digest: give 64 hex digits, as sha256sum prints them"}
			}
			return err == nil
		})
		return err
	})
}

// duration checks a Duration between 0 and max; zero means the kind's default.
func duration(max time.Duration) fieldRule {
	return rule(func(path string, v protoreflect.Value) error {
		d, ok := v.Message().Interface().(*durationpb.Duration)
		if !ok || !d.IsValid() || d.AsDuration() < 0 || d.AsDuration() > max {
			return &fieldError{path, fmt.Sprintf("must be between 0 (the default) and %v, for example 2m", max)}
		}
		return nil
	})
}

// presetVersionRE is a pod network provider's release.
var presetVersionRE = regexp.MustCompile(`^v[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$`)

func version(path, s string) error {
	if _, _, err := kubeimages.ParseKubernetesVersion(s); err != nil {
		return fieldFrom(path, err)
	}
	return nil
}

func port(path string, v protoreflect.Value) error {
	l := v.List()
	if l.Len() > MaxExtraPorts {
		return &fieldError{path, fmt.Sprintf("has %d entries; at most %d are allowed", l.Len(), MaxExtraPorts)}
	}
	for i := range l.Len() {
		if p := l.Get(i).Uint(); p < 1 || p > 65535 {
			return &fieldError{fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%d is not a TCP port: give 1..65535", p)}
		}
	}
	return nil
}

func oneOf(values ...string) func(path, s string) error {
	return func(path, s string) error {
		for _, v := range values {
			if s == v {
				return nil
			}
		}
		return &fieldError{path, fmt.Sprintf("%q: use %s", s, strings.Join(values, " or "))}
	}
}

func regex(re *regexp.Regexp, what string) func(path, s string) error {
	return func(path, s string) error {
		if !re.MatchString(s) {
			shown := s
			if len(shown) > 64 {
				shown = shown[:64] + "..."
			}
			return &fieldError{path, fmt.Sprintf("%q %s", shown, what)}
		}
		return nil
	}
}

// secretStr is the rule of a secret field: a value re does not match is refused without
// echoing it.
func secretStr(re *regexp.Regexp, what string) fieldRule {
	r := str(func(path, s string) error {
		if !re.MatchString(s) {
			return &fieldError{path, secretNotShown + what}
		}
		return nil
	})
	r.secret = true
	return r
}

const secretNotShown = "(secret, not shown) "

// fieldFrom turns a FieldError of a shared parser into a fieldError with the full path.
func fieldFrom(path string, err error) error {
	var fe *kubeimages.FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Field = ""
		p := path
		switch {
		case fe.Field != "" && path != "":
			p = path + "." + fe.Field
		case fe.Field != "":
			p = fe.Field
		}
		return &fieldError{p, c.Error()}
	}
	var own *fieldError
	if errors.As(err, &own) {
		return own
	}
	return &fieldError{path, err.Error()}
}

func td(m interface{ ProtoReflect() protoreflect.Message }) protoreflect.MessageDescriptor {
	return m.ProtoReflect().Descriptor()
}

// specRules has one rule for every field of every message a TaskSpec holds; the
// exhaustiveness test walks the descriptors and fails on a field without one.
var specRules = map[protoreflect.FullName]fieldRule{}

// messageRules check a message as a whole, after its fields: cross-field rules and
// required fields.
var messageRules = map[protoreflect.FullName]func(path string, m protoreflect.Message) error{}

func init() {
	r := func(m interface{ ProtoReflect() protoreflect.Message }, field string, fr fieldRule) {
		fd := td(m).Fields().ByName(protoreflect.Name(field))
		if fd == nil {
			panic("specrules: no field " + field + " in " + string(td(m).FullName()))
		}
		specRules[fd.FullName()] = fr
	}
	// TaskSpec: every kind is a message walked into.
	for i := range td(&taskv1.TaskSpec{}).Fields().Len() {
		specRules[td(&taskv1.TaskSpec{}).Fields().Get(i).FullName()] = nested
	}
	enumOf := func(m interface{ ProtoReflect() protoreflect.Message }, field string) fieldRule {
		return enumRule(td(m).Fields().ByName(protoreflect.Name(field)).Enum())
	}

	p := &taskv1.PreflightSpec{}
	r(p, "role", enumOf(p, "role"))
	r(p, "fix", anyValue("fix or only check"))
	r(p, "ignore", strList(MaxIgnoredChecks, regex(checkNameRE, "is not a preflight check name (letters, digits, '.', '_', '-'), as kubeadm's --ignore-preflight-errors takes")))
	r(p, "extra_ports", rule(port))
	r(p, "node_address", str(nodeAddress))
	r(p, "allow_vrrp", anyValue("let VRRP in or not"))
	r(p, "trusted_sources", strList(MaxTrustedSources, func(path, s string) error {
		if p, err := netip.ParsePrefix(s); err != nil || p.Masked() != p {
			return &fieldError{path, fmt.Sprintf("%q is not a network CIDR: give the cluster's pod subnet, such as 10.244.0.0/16", s)}
		}
		return nil
	}))
	r(p, "network_ports", strList(MaxExtraPorts, func(path, s string) error {
		var fe *podnet.FieldError
		if err := podnet.ParsePort(path, s); errors.As(err, &fe) {
			return &fieldError{path, fe.Msg}
		} else if err != nil {
			return &fieldError{path, err.Error()}
		}
		return nil
	}))

	pk := &taskv1.PackagesSpec{}
	r(pk, "kubernetes_version", str(version))
	r(pk, "source", enumOf(pk, "source"))
	r(pk, "base_url", str(safeURL))
	r(pk, "sha256", digests(oneOf("kubelet", "kubeadm", "kubectl")))
	r(pk, "hold", anyValue("hold or not"))
	r(pk, "components", rule(func(path string, v protoreflect.Value) error {
		var names []string
		for i := range v.List().Len() {
			names = append(names, v.List().Get(i).String())
		}
		if _, err := kubepkgs.Components(names); err != nil {
			return &fieldError{path, err.Error()}
		}
		return nil
	}))
	r(pk, "download_only", anyValue("download only or install"))
	r(pk, "restart_kubelet", anyValue("restart the kubelet or not"))

	reg := &taskv1.RegistrySettings{}
	r(reg, "image_repository", checkedBy("kubeimages.ParseRegistry"))
	r(reg, "mirrors", strList(MaxMirrors, nil))
	r(reg, "insecure_registries", strList(MaxInsecureRegistries, nil))
	messageRules[td(reg).FullName()] = func(path string, m protoreflect.Message) error {
		g := m.Interface().(*taskv1.RegistrySettings)
		if _, err := kubeimages.ParseRegistry(g.GetImageRepository(), g.GetMirrors(), g.GetInsecureRegistries()); err != nil {
			return fieldFrom(path, err)
		}
		return nil
	}

	rt := &taskv1.RuntimeSpec{}
	r(rt, "source", enumOf(rt, "source"))
	r(rt, "containerd_tarball", str(safetext.Location))
	r(rt, "runc_binary", str(safetext.Location))
	r(rt, "cni_plugins_tarball", str(safetext.Location))
	r(rt, "sha256", digests(safetext.Location))
	r(rt, "kubernetes_version", str(version))
	r(rt, "registry", nested)
	r(rt, "cgroup_driver", str(oneOf("systemd", "cgroupfs")))
	r(rt, "repository", nested)
	r(rt, "containerd_version", str(func(path, s string) error {
		if err := containerdrepo.CheckVersion(path, s); err != nil {
			return &fieldError{path, strings.TrimPrefix(err.Error(), path+" ")}
		}
		return nil
	}))
	rr := &taskv1.RuntimeRepository{}
	r(rr, "base_url", checkedBy("containerdrepo.Resolve"))
	r(rr, "gpg_key_url", checkedBy("containerdrepo.Resolve"))
	r(rr, "gpg_key_fingerprint", checkedBy("containerdrepo.Resolve"))
	messageRules[td(rr).FullName()] = func(path string, m protoreflect.Message) error {
		g := m.Interface().(*taskv1.RuntimeRepository)
		if _, err := containerdrepo.Resolve(path+".", g.GetBaseUrl(), g.GetGpgKeyUrl(), g.GetGpgKeyFingerprint(), hostos.OS{}); err != nil {
			return fieldFrom(path, err)
		}
		return nil
	}

	im := &taskv1.ImagesSpec{}
	r(im, "action", enumOf(im, "action"))
	r(im, "images", strList(MaxImages, func(path, s string) error {
		if _, err := kubeimages.ParseReference(s); err != nil {
			return fieldFrom(path, err)
		}
		return nil
	}))
	r(im, "extra_images", strList(MaxImages, func(path, s string) error {
		if _, err := kubeimages.ParseReference(s); err != nil {
			return fieldFrom(path, err)
		}
		return nil
	}))
	r(im, "kubernetes_version", str(version))
	r(im, "registry", nested)
	r(im, "pull_timeout", duration(time.Hour))
	r(im, "archive_path", str(safetext.AbsPath))
	messageRules[td(im).FullName()] = func(path string, m protoreflect.Message) error {
		s := m.Interface().(*taskv1.ImagesSpec)
		a := s.GetAction()
		if (a == taskv1.ImagesAction_IMAGES_ACTION_EXPORT || a == taskv1.ImagesAction_IMAGES_ACTION_IMPORT) && s.GetArchivePath() == "" {
			return &fieldError{path + ".archive_path", "is required for export and import: an absolute path on the node"}
		}
		return nil
	}

	cl := &taskv1.ClusterSpec{}
	for i := range td(cl).Fields().Len() {
		specRules[td(cl).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseCluster")
	}
	r(cl, "registry", nested) // and its own rules (list limits)
	r(cl, "api_server_cert_sans", strList(MaxCertSANs, nil))
	r(cl, "kubelet_extra_args", mapMax(MaxKubeletArgs))
	r(cl, "patches", listMax(MaxPatches))
	pa := &taskv1.KubeadmPatch{}
	for i := range td(pa).Fields().Len() {
		specRules[td(pa).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseCluster")
	}
	kp := &taskv1.KubeProxySettings{}
	for i := range td(kp).Fields().Len() {
		specRules[td(kp).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseCluster")
	}
	for _, m := range []proto.Message{&taskv1.CertificateSettings{}, &taskv1.EtcdSettings{}, &taskv1.EtcdBackup{}} {
		for i := range td(m).Fields().Len() {
			specRules[td(m).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseCluster")
		}
	}
	r(&taskv1.CertificateSettings{}, "manual", anyValue("renew only when asked"))
	r(cl, "network_provider", str(func(path, s string) error {
		if s == "" || slices.Contains(podnet.Providers, s) {
			return nil
		}
		return &fieldError{path, fmt.Sprintf("%q is not a pod network Deckhand installs: use %s (or leave it empty for %s)", s, strings.Join(podnet.Providers, ", "), podnet.Providers[0])}
	}))
	messageRules[td(cl).FullName()] = func(path string, m protoreflect.Message) error {
		if _, err := kubeadmconfig.ParseCluster(m.Interface().(*taskv1.ClusterSpec)); err != nil {
			return fieldFrom(path, err)
		}
		return nil
	}

	n := &taskv1.NodeSpec{}
	for i := range td(n).Fields().Len() {
		specRules[td(n).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseNode")
	}
	r(n, "labels", mapMax(MaxLabels))
	r(n, "taints", listMax(MaxTaints))
	r(n, "kubelet_extra_args", mapMax(MaxKubeletArgs))
	ta := &taskv1.Taint{}
	for i := range td(ta).Fields().Len() {
		specRules[td(ta).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseNode")
	}
	messageRules[td(n).FullName()] = func(path string, m protoreflect.Message) error {
		if _, err := kubeadmconfig.ParseNode(m.Interface().(*taskv1.NodeSpec)); err != nil {
			var fe *kubeimages.FieldError
			if errors.As(err, &fe) && strings.HasPrefix(fe.Field, "node.") {
				c := *fe
				c.Field = strings.TrimPrefix(c.Field, "node.")
				err = &c
			}
			return fieldFrom(path, err)
		}
		return nil
	}

	in := &taskv1.KubeadmInitSpec{}
	r(in, "cluster", nested)
	r(in, "node", nested)
	r(in, "upload_certs", anyValue("upload or not"))
	r(in, "health_timeout", duration(time.Hour))

	tk := &taskv1.KubeadmTokenSpec{}
	r(tk, "delete_token_id", str(func(path, s string) error {
		switch {
		case tokenIDRE.MatchString(s):
			return nil
		case strings.Contains(s, "."):
			// A full id.secret token would be stored in the spec and shown to viewers;
			// the agent needs only the ID. The value is never echoed.
			return &fieldError{path, secretNotShown + "is a full token or has a dot: give only the 6-character token ID before the dot, as kubeadm token list shows it"}
		default:
			return regex(tokenIDRE, "is not a bootstrap token ID ([a-z0-9]{6}): give the 6-character ID kubeadm token list shows")(path, s)
		}
	}))
	r(tk, "ttl", duration(24*time.Hour))
	r(tk, "control_plane", anyValue("also upload certificates or not"))

	j := &taskv1.KubeadmJoinSpec{}
	r(j, "cluster", nested)
	r(j, "node", nested)
	r(j, "role", enumOf(j, "role"))
	r(j, "token", secretStr(tokenRE, "is not a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}: use the token kubeadm token create printed"))
	r(j, "ca_cert_hash", str(regex(caHashRE, "is not sha256:<64 lower-case hex digits>: use the hash kubeadm init or deckctl cluster printed")))
	r(j, "certificate_key", secretStr(regexp.MustCompile(`^[0-9a-f]{64}$`), "is not 64 lower-case hex digits: use the key kubeadm init phase upload-certs printed"))
	r(j, "health_timeout", duration(time.Hour))
	messageRules[td(j).FullName()] = func(path string, m protoreflect.Message) error {
		s := m.Interface().(*taskv1.KubeadmJoinSpec)
		if s.GetCertificateKey() != "" && s.GetRole() != taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			return &fieldError{path + ".certificate_key", "is only used to join a control plane (role control-plane); leave it empty for a worker"}
		}
		return nil
	}

	rs := &taskv1.KubeadmResetSpec{}
	r(rs, "ipvs", anyValue("clean IPVS or not"))
	r(rs, "remove_etcd_member", anyValue("remove the member or not"))

	dr := &taskv1.DrainSpec{}
	r(dr, "node_name", str(safetext.KubernetesName))
	r(dr, "timeout", duration(24*time.Hour))
	r(dr, "force", anyValue("force or not"))
	r(dr, "uncordon", anyValue("uncordon or drain"))

	r(&taskv1.DeleteNodeSpec{}, "node_name", str(safetext.KubernetesName))
	em := &taskv1.EtcdMembersSpec{}
	r(em, "absent", str(safetext.KubernetesName))
	r(em, "absent_address", str(func(path, s string) error {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return &fieldError{path, fmt.Sprintf("%q is not an IP address: give the node's address, as kubectl get nodes -o wide shows it", s)}
		}
		return nil
	}))

	nr := &taskv1.NodeReadySpec{}
	r(nr, "node_name", str(safetext.KubernetesName))
	r(nr, "timeout", duration(24*time.Hour))
	r(nr, "wait", enumOf(nr, "wait"))
	r(nr, "kubelet_version", str(version))
	ku := &taskv1.KubeadmUpgradeSpec{}
	r(ku, "kubernetes_version", str(version))
	r(ku, "apply", anyValue("kubeadm upgrade apply or node"))
	messageRules[td(ku).FullName()] = func(path string, m protoreflect.Message) error {
		if m.Interface().(*taskv1.KubeadmUpgradeSpec).GetKubernetesVersion() == "" {
			return &fieldError{path + ".kubernetes_version", "is required: the release to upgrade to, such as v1.34.12"}
		}
		return nil
	}
	ch := &taskv1.ClusterHealthSpec{}
	r(ch, "nodes", strList(MaxHealthNodes, safetext.KubernetesName))
	// certs_renew has no field: its message needs no rule.
	snapshotName := func(path, s string) error {
		if !snapshotNameRE.MatchString(s) {
			return &fieldError{path, fmt.Sprintf("%q is not a snapshot name: give 1-63 characters of a-z, 0-9 and -, as deckctl etcd snapshots lists them", s)}
		}
		return nil
	}
	es := &taskv1.EtcdSnapshotSpec{}
	r(es, "name", str(snapshotName))
	// keep deletes scheduled snapshots: the leader's, from spec.etcd.backup.keep.
	r(es, "keep", rule(func(path string, v protoreflect.Value) error {
		return &fieldError{path, "is set by the controller only: spec.etcd.backup.keep says how many scheduled snapshots each control plane keeps"}
	}))
	controllerOnly := str(func(path, s string) error {
		return &fieldError{path, "is set by the controller only: deckctl etcd snapshot --save streams a snapshot to you"}
	})
	r(es, "upload_address", controllerOnly)
	r(es, "transfer_id", controllerOnly)
	er := &taskv1.EtcdRestoreSpec{}
	r(er, "phase", enumOf(er, "phase"))
	r(er, "snapshot", str(snapshotName))
	r(er, "sha256", str(func(path, s string) error {
		if !sha256HexRE.MatchString(s) {
			return &fieldError{path, "is not a SHA-256 digest: give 64 lower-case hex digits"}
		}
		return nil
	}))
	r(er, "force", anyValue("restore although healthy"))
	r(er, "restore_id", str(snapshotName))
	r(er, "first_address", str(func(path, s string) error {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return &fieldError{path, fmt.Sprintf("%q is not an IP address", s)}
		}
		return nil
	}))

	// A network spec is parsed as a whole by podnet.Parse, the parser the agent runs too.
	nw := &taskv1.NetworkSpec{}
	for i := range td(nw).Fields().Len() {
		specRules[td(nw).Fields().Get(i).FullName()] = checkedBy("podnet.Parse")
	}
	nwr := &taskv1.NetworkRoute{}
	for i := range td(nwr).Fields().Len() {
		specRules[td(nwr).Fields().Get(i).FullName()] = checkedBy("podnet.Parse")
	}
	r(nw, "generation", generation)
	messageRules[td(nw).FullName()] = func(path string, m protoreflect.Message) error {
		if _, err := podnet.Parse(m.Interface().(*taskv1.NetworkSpec)); err != nil {
			var fe *podnet.FieldError
			if errors.As(err, &fe) {
				return &fieldError{path + "." + fe.Field, fe.Msg}
			}
			return &fieldError{path, err.Error()}
		}
		return nil
	}

	// The load balancer's settings (in a cluster spec and in a load_balancer task) and its
	// task are parsed as a whole by lbconf, the parser the agent runs too.
	lbs := &taskv1.LoadBalancerSettings{}
	for i := range td(lbs).Fields().Len() {
		specRules[td(lbs).Fields().Get(i).FullName()] = checkedBy("lbconf.ParseSettings")
	}
	lb := &taskv1.LoadBalancerSpec{}
	for i := range td(lb).Fields().Len() {
		specRules[td(lb).Fields().Get(i).FullName()] = checkedBy("lbconf.Parse")
	}
	r(lb, "remove", anyValue("a bool: remove or configure"))
	r(lb, "generation", generation)
	messageRules[td(lb).FullName()] = func(path string, m protoreflect.Message) error {
		if _, err := lbconf.Parse(m.Interface().(*taskv1.LoadBalancerSpec)); err != nil {
			var fe *lbconf.FieldError
			if errors.As(err, &fe) {
				return &fieldError{path + "." + fe.Field, fe.Msg}
			}
			return &fieldError{path, err.Error()}
		}
		return nil
	}

	ma := &taskv1.ManifestSpec{}
	r(ma, "name", str(func(path, s string) error {
		if !manifests.ValidName(s) {
			return &fieldError{path, "is not a manifest name: lower-case letters, digits and '-', starting with a letter, at most 63 characters"}
		}
		return nil
	}))
	r(ma, "content", str(func(path, s string) error {
		if _, err := manifests.Parse(s, false); err != nil {
			return &fieldError{path, err.Error()}
		}
		return nil
	}))
	r(ma, "timeout", duration(time.Hour))
	imageRefs := strList(MaxImages, func(path, s string) error {
		if _, err := kubeimages.ParseReference(s); err != nil {
			return fieldFrom(path, err)
		}
		return nil
	})
	sha := str(regex(hex64RE, "is not a SHA-256: give 64 hex digits, as sha256sum prints them"))
	r(ma, "location", str(safetext.Location))
	r(ma, "sha256", sha)
	r(ma, "registry", nested)
	r(ma, "images", imageRefs)
	r(ma, "preset", nested)
	messageRules[td(ma).FullName()] = func(path string, m protoreflect.Message) error {
		s := m.Interface().(*taskv1.ManifestSpec)
		switch {
		case s.GetName() == "":
			return &fieldError{path + ".name", "is required: name the manifest (lower-case letters, digits and '-')"}
		case s.GetPreset() != nil && (s.GetLocation() != "" || s.GetContent() != ""):
			return &fieldError{path + ".preset", "is set beside content or a location: give one of them"}
		case s.GetPreset() != nil:
			return nil
		case s.GetLocation() != "" && s.GetContent() != "":
			return &fieldError{path + ".location", "is set beside content: give one of them"}
		case s.GetLocation() != "" && s.GetSha256() == "":
			return &fieldError{path + ".sha256", "is required with a location: the manifest's SHA-256 (sha256sum FILE)"}
		case s.GetLocation() == "" && strings.TrimSpace(s.GetContent()) == "":
			return &fieldError{path + ".content", "is required: give the objects to apply, YAML documents separated by --- lines, a location or a preset"}
		}
		return nil
	}
	np := &taskv1.NetworkPreset{}
	r(np, "provider", str(func(path, s string) error {
		if p, ok := podnet.Lookup(s); !ok || s == "" || p.Manifest == nil {
			return &fieldError{path, fmt.Sprintf("%q is not a pod network provider Deckhand carries a manifest of: use flannel, calico or cilium", s)}
		}
		return nil
	}))
	r(np, "version", str(func(path, s string) error {
		if !presetVersionRE.MatchString(s) {
			return &fieldError{path, fmt.Sprintf("%q is not a release: give one such as v1.18.4", s)}
		}
		return nil
	}))
	r(np, "pod_subnet", str(func(path, s string) error {
		if p, err := netip.ParsePrefix(s); err != nil || !p.Addr().Is4() {
			return &fieldError{path, fmt.Sprintf("%q is not an IPv4 CIDR: give the cluster's pod subnet, such as 10.244.0.0/16", s)}
		}
		return nil
	}))
	messageRules[td(np).FullName()] = func(path string, m protoreflect.Message) error {
		s := m.Interface().(*taskv1.NetworkPreset)
		if p, ok := podnet.Lookup(s.GetProvider()); !ok || s.GetProvider() == "" || p.Manifest == nil {
			return &fieldError{path + ".provider", fmt.Sprintf("%q is not a pod network provider Deckhand carries a manifest of: use flannel, calico or cilium", s.GetProvider())}
		}
		_, err := podnet.MustLookup(s.GetProvider()).Manifest(podnet.ManifestInput{PodSubnet: s.GetPodSubnet(), Version: s.GetVersion()})
		var fe *podnet.FieldError
		switch {
		case errors.As(err, &fe) && fe.Field == "network_provider_version":
			return &fieldError{path + ".version", fe.Msg}
		case errors.As(err, &fe):
			return &fieldError{path + "." + fe.Field, fe.Msg}
		case err != nil:
			return &fieldError{path, err.Error()}
		}
		return nil
	}
	// A cluster spec's pod network manifest is checked as part of it (kubeadmconfig.ParseCluster).
	nm := &taskv1.NetworkManifest{}
	r(cl, "network_manifest", nested)
	for i := range td(nm).Fields().Len() {
		specRules[td(nm).Fields().Get(i).FullName()] = checkedBy("kubeadmconfig.ParseCluster")
	}

	ks := &taskv1.KubeconfigSignSpec{}
	r(ks, "csr_pem", str(func(path, s string) error {
		if len(s) > kubeuser.MaxCSRBytes || !strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN CERTIFICATE REQUEST-----") {
			return &fieldError{path, fmt.Sprintf("is not a PEM CERTIFICATE REQUEST of at most %d bytes: deckctl kubeconfig makes one", kubeuser.MaxCSRBytes)}
		}
		return nil // checked against name and groups as a whole below
	}))
	r(ks, "name", str(func(path, s string) error {
		if err := kubeuser.CheckName(s); err != nil {
			return &fieldError{path, err.Error()}
		}
		return nil
	}))
	r(ks, "groups", strList(1, func(path, s string) error {
		if s != kubeuser.AdminGroup {
			return &fieldError{path, fmt.Sprintf("%q is not a group Deckhand grants: the only one is %s (cluster-admin)", s, kubeuser.AdminGroup)}
		}
		return nil
	}))
	r(ks, "ttl", rule(func(path string, v protoreflect.Value) error {
		d, ok := v.Message().Interface().(*durationpb.Duration)
		if !ok || !d.IsValid() {
			return &fieldError{path, "is not a valid duration"}
		}
		if err := kubeuser.CheckTTL(d.AsDuration()); err != nil {
			return &fieldError{path, err.Error()}
		}
		return nil
	}))
	r(ks, "view_binding", anyValue("bind the ClusterRole view or not"))
	messageRules[td(ks).FullName()] = func(path string, m protoreflect.Message) error {
		s := m.Interface().(*taskv1.KubeconfigSignSpec)
		if _, err := kubeuser.CheckCSR([]byte(s.GetCsrPem()), s.GetName(), s.GetGroups()); err != nil {
			return &fieldError{path + ".csr_pem", err.Error()}
		}
		if s.GetViewBinding() && len(s.GetGroups()) > 0 {
			return &fieldError{path + ".view_binding", "is for a read-only user: leave groups empty with it"}
		}
		return nil
	}

	r(&taskv1.DiagnosticsSpec{}, "journal_lines", rule(func(path string, v protoreflect.Value) error {
		if v.Uint() > MaxJournalLines {
			return &fieldError{path, fmt.Sprintf("%d: at most %d lines per unit", v.Uint(), MaxJournalLines)}
		}
		return nil
	}))

	// Required fields, per kind: a field left empty is never visited by the walk.
	messageRules[td(&taskv1.TaskSpec{}).FullName()] = func(path string, m protoreflect.Message) error {
		s := m.Interface().(*taskv1.TaskSpec)
		req := func(field, value, hint string) error {
			if value == "" {
				return &fieldError{path + "." + field, "is required: " + hint}
			}
			return nil
		}
		switch k := s.GetKind().(type) {
		case *taskv1.TaskSpec_Packages:
			return req("packages.kubernetes_version", k.Packages.GetKubernetesVersion(), "give a release such as v1.33.13")
		case *taskv1.TaskSpec_KubeadmInit:
			return requiredKubeadm(path+".kubeadm_init", k.KubeadmInit.GetCluster(), k.KubeadmInit.GetNode())
		case *taskv1.TaskSpec_KubeadmJoin:
			if err := requiredKubeadm(path+".kubeadm_join", k.KubeadmJoin.GetCluster(), k.KubeadmJoin.GetNode()); err != nil {
				return err
			}
			if err := req("kubeadm_join.token", k.KubeadmJoin.GetToken(), "a bootstrap token from kubeadm token create"); err != nil {
				return err
			}
			return req("kubeadm_join.ca_cert_hash", k.KubeadmJoin.GetCaCertHash(), "sha256:<hex> of the cluster CA, as kubeadm init printed it")
		case *taskv1.TaskSpec_Drain:
			return req("drain.node_name", k.Drain.GetNodeName(), "the Kubernetes node to drain")
		case *taskv1.TaskSpec_DeleteNode:
			return req("delete_node.node_name", k.DeleteNode.GetNodeName(), "the Kubernetes node to delete")
		case *taskv1.TaskSpec_NodeReady:
			return req("node_ready.node_name", k.NodeReady.GetNodeName(), "the Kubernetes node to wait for")
		case *taskv1.TaskSpec_KubeconfigSign:
			if err := req("kubeconfig_sign.name", k.KubeconfigSign.GetName(), "the Kubernetes user the certificate is for"); err != nil {
				return err
			}
			if err := req("kubeconfig_sign.csr_pem", k.KubeconfigSign.GetCsrPem(), "a PEM certificate request (deckctl kubeconfig makes one)"); err != nil {
				return err
			}
			if k.KubeconfigSign.GetTtl() == nil {
				return &fieldError{path + ".kubeconfig_sign.ttl", fmt.Sprintf("is required: give %v to %v", kubeuser.MinTTL, kubeuser.MaxTTL)}
			}
		}
		return nil
	}
}

func requiredKubeadm(path string, c *taskv1.ClusterSpec, n *taskv1.NodeSpec) error {
	if c == nil {
		return &fieldError{path + ".cluster", "is required: the cluster's version, subnets and registry"}
	}
	if n == nil {
		return &fieldError{path + ".node", "is required: at least the node's name"}
	}
	return nil
}

// nodeAddress is a node's address in the cluster: a unicast IP address other hosts can
// reach.
func nodeAddress(path, s string) error {
	ip, err := netip.ParseAddr(s)
	switch {
	case err != nil || ip.Zone() != "":
		return &fieldError{path, fmt.Sprintf("%q is not an IP address: give the node's address on the cluster's network", s)}
	case ip.Is4In6() || !ip.IsGlobalUnicast():
		return &fieldError{path, fmt.Sprintf("%s is not a unicast address other hosts can reach: give the node's address on the cluster's network", s)}
	}
	return nil
}

// safeURL is an http(s) URL that cannot change the files it is written into.
func safeURL(path, s string) error { return safetext.HTTPURL(path, s) }

// walkSpec applies specRules to every set field of m and below, then messageRules to each
// message; a field without a rule is refused (the exhaustiveness test keeps that from
// happening).
func walkSpec(path string, m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		fr, ok := specRules[fd.FullName()]
		if !ok {
			err = &fieldError{p, "has no validation rule in this controller version: leave it empty, or upgrade the controllers"}
			return false
		}
		if tasksecrets.Field(fd) && !fr.secret {
			// A rule that might echo a secret (the exhaustiveness test keeps this from happening).
			err = &fieldError{p, secretNotShown + "has no secret-safe validation rule in this controller version: leave it empty, or upgrade the controllers"}
			return false
		}
		if fr.check != nil {
			if err = fr.check(p, v); err != nil {
				err = fieldFrom("", err) // a shared parser's error names the full path too
				return false
			}
		}
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() || !strings.HasPrefix(string(fd.Message().FullName()), "deckhand.") {
			return true
		}
		if fd.IsList() {
			for i := range v.List().Len() {
				if err = walkSpec(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i).Message()); err != nil {
					return false
				}
			}
			return true
		}
		err = walkSpec(p, v.Message())
		return err == nil
	})
	if err != nil {
		return err
	}
	if mr := messageRules[m.Descriptor().FullName()]; mr != nil {
		if err := mr(path, m); err != nil {
			return fieldFrom("", err)
		}
	}
	return nil
}

package tasksecrets

import (
	"regexp"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// notSecret are the fields named like a secret that are not one, and why.
var notSecret = map[protoreflect.FullName]string{
	"deckhand.task.v1.Taint.key":                             "a Kubernetes taint's key, shown by kubectl to anyone",
	"deckhand.task.v1.KubeadmTokenSpec.delete_token_id":      "the public ID before the dot; the API refuses a full token",
	"deckhand.task.v1.RuntimeRepository.gpg_key_url":         "where a repository publishes its public signing key",
	"deckhand.task.v1.RuntimeRepository.gpg_key_fingerprint": "a public key's fingerprint, published to be checked against",
}

var secretLike = regexp.MustCompile(`(?i)token|key|passw|secret|credential|private`)

// Every string field of every message a TaskSpec can hold whose name looks like a secret
// is marked secret in the proto, or listed in notSecret with a reason. (Secret outputs are
// declared by name in Output.)
func TestEverySecretLikeFieldIsMarked(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var marked []protoreflect.FullName
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if Field(fd) {
				marked = append(marked, fd.FullName())
				if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
					t.Errorf("%s is marked secret but is not a single string: Values and Redact skip it", fd.FullName())
				}
				if _, ok := notSecret[fd.FullName()]; ok {
					t.Errorf("%s is marked secret and listed in notSecret", fd.FullName())
				}
			} else if (fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind) && secretLike.MatchString(string(fd.Name())) {
				if _, ok := notSecret[fd.FullName()]; !ok {
					t.Errorf("%s looks like a secret but is not marked: add [(deckhand.task.v1.secret) = true] in the proto, or list it in notSecret with a reason", fd.FullName())
				}
			}
			switch {
			case fd.IsMap():
				// A map's keys are names; its values are walked if messages.
				if fd.MapValue().Message() != nil {
					walk(fd.MapValue().Message())
				}
			case fd.Message() != nil:
				walk(fd.Message())
			}
		}
	}
	walk((&taskv1.TaskSpec{}).ProtoReflect().Descriptor())
	for name := range notSecret {
		if !seen[name.Parent()] {
			t.Errorf("notSecret names %s, which no TaskSpec holds: remove it", name)
		}
	}
	for _, want := range []protoreflect.FullName{"deckhand.task.v1.KubeadmJoinSpec.token", "deckhand.task.v1.KubeadmJoinSpec.certificate_key"} {
		if !slices.Contains(marked, want) {
			t.Errorf("%s is not marked secret", want)
		}
	}
}

func TestValuesAndRedact(t *testing.T) {
	spec := &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmJoin{KubeadmJoin: &taskv1.KubeadmJoinSpec{
		Token: "abcdef.0123456789abcdef", CaCertHash: "sha256:00", CertificateKey: "k1",
		Node: &taskv1.NodeSpec{Name: "n1", Taints: []*taskv1.Taint{{Key: "k", Value: "v"}}},
	}}}
	if got := Values(spec); !slices.Equal(got, []string{"abcdef.0123456789abcdef", "k1"}) {
		t.Errorf("Values = %q", got)
	}
	c := proto.Clone(spec).(*taskv1.TaskSpec)
	if !Redact(c, "<hidden>") {
		t.Fatal("Redact changed nothing")
	}
	j := c.GetKubeadmJoin()
	if j.GetToken() != "<hidden>" || j.GetCertificateKey() != "<hidden>" || j.GetCaCertHash() != "sha256:00" || j.GetNode().GetTaints()[0].GetKey() != "k" {
		t.Errorf("Redact = %v", c)
	}
	if Redact(&taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeadmToken{KubeadmToken: &taskv1.KubeadmTokenSpec{DeleteTokenId: "abcdef"}}}, "x") {
		t.Error("Redact changed a spec without secrets")
	}
	if !Output("token") || !Output("certificate_key") || Output("ca_cert_hash") {
		t.Error("Output is wrong")
	}
}

package safetext

import (
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"https url", HTTPURL("f", "https://pkgs.k8s.io/core:/stable:/v1.33/rpm"), true},
		{"http url with port", HTTPURL("f", "http://127.0.0.1:8080/repo"), true},
		{"file url", HTTPURL("f", "file:///etc/passwd"), false},
		{"newline", HTTPURL("f", "https://m/x\n[evil]\ngpgcheck=0"), false},
		{"space", HTTPURL("f", "https://m/x /"), false},
		{"no host", HTTPURL("f", "https:///x"), false},
		{"user info", HTTPURL("f", "https://u:p@m/x"), false},
		{"fragment", HTTPURL("f", "https://m/x#y"), false},
		{"long", HTTPURL("f", "https://m/"+strings.Repeat("a", MaxLen)), false},
		{"abs path", AbsPath("f", "/var/tmp/a.tar"), true},
		{"relative", AbsPath("f", "a.tar"), false},
		{"unclean", AbsPath("f", "/var/../etc/shadow"), false},
		{"control in path", AbsPath("f", "/var/a\x00b"), false},
		{"location url", Location("f", "https://github.com/a.tar.gz"), true},
		{"location path", Location("f", "/tmp/a.tar.gz"), true},
		{"location other", Location("f", "ftp://x"), false},
		{"node name", KubernetesName("f", "worker-1.lab"), true},
		{"flag", KubernetesName("f", "--kubeconfig=/etc/kubernetes/admin.conf"), false},
		{"upper", KubernetesName("f", "Worker"), false},
		{"empty", KubernetesName("f", ""), false},
	} {
		if (tc.err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
		if tc.err != nil && !strings.HasPrefix(tc.err.Error(), "f: ") {
			t.Errorf("%s: the error does not name the field: %v", tc.name, tc.err)
		}
	}
}

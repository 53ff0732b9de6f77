package hostos

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in, id, version, pretty string
	}{
		{"debian", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n", "debian", "12", "Debian GNU/Linux 12 (bookworm)"},
		{"single quotes", "ID='rocky'\nVERSION_ID='9.4'\n", "rocky", "9.4", ""},
		{"escapes", `ID="we\"ird\\os"` + "\nVERSION_ID=\"\\$1\"\n", `we"ird\os`, "$1", ""},
		{"comments and blanks", "# ID=commented\n\n  ID=alpine  \r\nVERSION_ID=3.20.3\n", "alpine", "3.20.3", ""},
		{"later wins", "ID=a\nID=b\n", "b", "", ""},
		{"ID_LIKE is not ID", "ID_LIKE=rhel fedora\nVERSION=9\n", "", "", ""},
		{"unbalanced quote kept", "ID=\"fedora\n", "\"fedora", "", ""},
		{"invalid utf-8", "ID=\xff\xfe\n", "\uFFFD", "", ""},
		{"control characters dropped", "PRETTY_NAME=\"a\x1b[2Jb\"\n", "", "", "a[2Jb"},
		{"empty", "", "", "", ""},
	} {
		o := Parse([]byte(tc.in))
		if o.ID != tc.id || o.VersionID != tc.version || o.PrettyName != tc.pretty {
			t.Errorf("%s: got %+v, want ID %q VERSION_ID %q PRETTY_NAME %q", tc.name, o, tc.id, tc.version, tc.pretty)
		}
	}
}

// The OS decides the package family and whether preflight lets the host in.
func TestFamilyAndSupported(t *testing.T) {
	for _, tc := range []struct {
		in        string
		family    Family
		supported string // "" when supported, else part of the error
	}{
		{"ID=debian\nVERSION_ID=\"12\"\n", Deb, ""},
		{"ID=debian\nVERSION_ID=\"10\"\nPRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\n", Deb, `Debian GNU/Linux 10 (buster) (VERSION_ID "10") is older than the oldest Debian supported, 11`},
		{"ID=ubuntu\nVERSION_ID=\"24.04\"\n", Deb, ""},
		{"ID=ubuntu\nVERSION_ID=\"20.04\"\n", Deb, ""},
		{"ID=ubuntu\nVERSION_ID=\"18.04\"\n", Deb, "older than the oldest Ubuntu supported, 20.04"},
		{"ID=rocky\nVERSION_ID=\"9.5\"\nID_LIKE=\"rhel centos fedora\"\n", RPM, ""},
		{"ID=almalinux\nVERSION_ID=\"8.10\"\n", RPM, ""},
		{"ID=rhel\nVERSION_ID=\"7.9\"\n", RPM, "older than the oldest Red Hat Enterprise Linux supported, 8"},
		{"ID=centos\nVERSION_ID=\"9\"\n", RPM, ""},
		{"ID=centos\nVERSION_ID=\"8\"\n", RPM, "older than the oldest CentOS Stream supported, 9"},
		{"ID=ol\nVERSION_ID=\"9.4\"\nID_LIKE=\"fedora\"\nPRETTY_NAME=\"Oracle Linux Server 9.4\"\n", RPM, `Oracle Linux Server 9.4 (ID "ol") is not supported: Deckhand supports Debian 11+, Ubuntu 20.04+, Rocky Linux 8+`},
		{"ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=22\n", Deb, `linuxmint 22 (ID "linuxmint") is not supported`},
		{"ID=alpine\nVERSION_ID=3.20.3\n", "", "not supported"},
		{"ID=fedora\nVERSION_ID=41\n", RPM, `fedora 41 (ID "fedora") is not supported`},
		{"ID=rocky\nVERSION_ID=\"nine\"\n", RPM, "older than the oldest"},
		{"", "", "an OS without /etc/os-release"},
	} {
		o := Parse([]byte(tc.in))
		if f := o.Family(); f != tc.family {
			t.Errorf("%q: family %q, want %q", tc.in, f, tc.family)
		}
		err := o.Supported()
		switch {
		case tc.supported == "" && err != nil:
			t.Errorf("%q: refused: %v", tc.in, err)
		case tc.supported != "" && (err == nil || !strings.Contains(err.Error(), tc.supported)):
			t.Errorf("%q: Supported() = %v, want an error with %q", tc.in, err, tc.supported)
		}
	}
}

// One declaration per distribution: IDs are unique and each names a family.
func TestDistrosAreDeclaredOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Distros {
		if seen[d.ID] || d.Name == "" || (d.Family != Deb && d.Family != RPM) || !atLeast(d.Min, d.Min) {
			t.Errorf("distro %+v: duplicate, unnamed, without a family or with an unreadable Min", d)
		}
		seen[d.ID] = true
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n"))
	f.Add([]byte("ID='rocky'\nVERSION_ID=\"9\\\"4\\\\\"\n# c\n"))
	f.Add([]byte("ID=\"\nVERSION_ID='\n=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o := Parse(data)
		for _, v := range append([]string{o.ID, o.VersionID, o.PrettyName, o.Name()}, o.Like...) {
			if !utf8.ValidString(v) || strings.Contains(v, "\n") || len(v) > 128+32 {
				t.Fatalf("Parse(%q) gave %q: want one short line of valid UTF-8", data, v)
			}
		}
		_ = o.Supported()
	})
}

func TestSELinux(t *testing.T) {
	rocky := []byte("# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n")
	for _, tc := range []struct {
		name            string
		enforce, config []byte
		now, boot       string
	}{
		{"enforcing", []byte("1"), rocky, Enforcing, Enforcing},
		{"permissive now, enforcing at boot", []byte("0\n"), rocky, Permissive, Enforcing},
		{"kernel without SELinux", nil, []byte("SELINUX=disabled\n"), Disabled, Disabled},
		{"not on this host", nil, nil, "", ""},
		{"quoted and upper case", []byte("1"), []byte("SELINUX=\"Permissive\"\n"), Enforcing, Permissive},
		{"unknown value", []byte("1"), []byte("SELINUX=maybe\n"), Enforcing, ""},
		{"a comment after the value", []byte("0"), []byte("SELINUX=enforcing # the installer's\n"), Permissive, Enforcing},
	} {
		if now := SELinuxMode(tc.enforce, tc.config); now != tc.now {
			t.Errorf("%s: mode now %q, want %q", tc.name, now, tc.now)
		}
		if boot := SELinuxBootMode(tc.config); boot != tc.boot {
			t.Errorf("%s: mode at boot %q, want %q", tc.name, boot, tc.boot)
		}
	}

	out, changed := SELinuxPermissive(rocky)
	if want := "# This file controls the state of SELinux on the system.\nSELINUX=permissive\nSELINUXTYPE=targeted\n"; !changed || string(out) != want {
		t.Fatalf("permissive: %v %q, want %q", changed, out, want)
	}
	if again, changed := SELinuxPermissive(out); changed || string(again) != string(out) {
		t.Fatalf("permissive twice changed it: %q", again)
	}
	if out, _ := SELinuxPermissive([]byte("SELINUXTYPE=targeted")); string(out) != "SELINUXTYPE=targeted\nSELINUX=permissive\n" {
		t.Fatalf("permissive added to a file without SELINUX=: %q", out)
	}
	if out, _ := SELinuxPermissive([]byte("SELINUX=enforcing\nSELINUX=enforcing\n")); string(out) != "SELINUX=permissive\n" {
		t.Fatalf("two SELINUX= lines: %q", out)
	}
}

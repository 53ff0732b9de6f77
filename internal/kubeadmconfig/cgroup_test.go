package kubeadmconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

func TestCgroupDriverFor(t *testing.T) {
	for _, c := range []struct {
		want        string
		systemdInit bool
		driver, err string
	}{
		{"", true, "systemd", ""},
		{"", false, "cgroupfs", ""},
		{"systemd", true, "systemd", ""},
		{"cgroupfs", true, "cgroupfs", ""},
		{"cgroupfs", false, "cgroupfs", ""},
		{"systemd", false, "", "cannot work on node-1: its init is not systemd"},
		{"Systemd", true, "", "is not systemd or cgroupfs"},
		{"none", false, "", "is not systemd or cgroupfs"},
	} {
		got, err := CgroupDriverFor(c.want, c.systemdInit, "node-1")
		var fe *kubeimages.FieldError
		switch {
		case c.err == "" && (err != nil || got != c.driver):
			t.Errorf("(%q, systemd init %v) = %q, %v; want %q", c.want, c.systemdInit, got, err, c.driver)
		case c.err != "" && (!errors.As(err, &fe) || fe.Field != "cgroup_driver" || !strings.Contains(err.Error(), c.err) || got != ""):
			t.Errorf("(%q, systemd init %v) = %q, %v; want an error on cgroup_driver saying %q", c.want, c.systemdInit, got, err, c.err)
		}
	}
}

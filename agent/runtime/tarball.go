package runtime

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/deckhandhq/deckhand/agent/artifact"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// maxArtifact bounds an extracted file.
const maxArtifact = host.MaxDownload

// unit is containerd's upstream systemd unit, for tarball installs (packages ship their own).
const unit = `[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`

// installTarballs installs containerd (and runc and the CNI plugins when given) from
// release artifacts, verifying each against its SHA-256 when one is given (always for
// URLs), and writes the systemd unit.
func installTarballs(ctx context.Context, spec *taskv1.RuntimeSpec, h *host.Host, e *tasks.Emitter) error {
	if spec.GetContainerdTarball() == "" {
		return tasks.Errorf("INVALID_ARGUMENT", "pass --containerd-tarball with a release tarball URL or a path on the node", "containerd_tarball is required with source tarball")
	}
	steps := []struct {
		field, location, dest string
		extract               bool
	}{
		{"containerd_tarball", spec.GetContainerdTarball(), "/usr/local", true},
		{"runc_binary", spec.GetRuncBinary(), "/usr/local/sbin/runc", false},
		{"cni_plugins_tarball", spec.GetCniPluginsTarball(), CNIBinDir, true},
	}
	for _, s := range steps {
		if s.location == "" {
			continue
		}
		data, err := artifact.Fetch(ctx, h, s.field, s.location, spec.GetSha256()[s.location], host.MaxDownload)
		if err != nil {
			return err
		}
		if !s.extract {
			if _, err := h.WriteFile(s.dest, data, 0o755); err != nil {
				return err
			}
			continue
		}
		n, err := extract(h, s.field, data, s.dest)
		if err != nil {
			return err
		}
		e.Logf("%s: %d files checked under %s", s.location, n, s.dest)
	}
	changed, err := h.WriteFile("/etc/systemd/system/containerd.service", []byte(unit), 0o644)
	if err != nil {
		return err
	}
	if changed {
		return h.Run(ctx, "reload systemd units", "systemctl", "daemon-reload")
	}
	return nil
}

// extract writes the regular files of a .tar.gz under dest through the Host (so an
// unchanged file is no change, and a dry-run writes nothing). Entries that would leave
// dest are refused.
func extract(h *host.Host, field string, data []byte, dest string) (int, error) {
	zr, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		return 0, tasks.Errorf("INVALID_ARGUMENT", "give a .tar.gz release artifact", "%s is not a gzip archive: %v", field, err)
	}
	tr := tar.NewReader(zr)
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, tasks.Errorf("INVALID_ARGUMENT", "give a .tar.gz release artifact", "%s: %v", field, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean("/" + hdr.Name)
		if strings.Contains(hdr.Name, "..") || hdr.Size > maxArtifact {
			return n, tasks.Errorf("INVALID_ARGUMENT", "use an official release artifact", "%s: entry %q is unsafe", field, hdr.Name)
		}
		body, err := io.ReadAll(io.LimitReader(tr, maxArtifact))
		if err != nil {
			return n, err
		}
		mode := hdr.FileInfo().Mode().Perm()
		if _, err := h.WriteFile(path.Join(dest, name), body, mode); err != nil {
			return n, err
		}
		n++
	}
}

// Package host is the agent's only way to touch a host: files under a root prefix and
// commands run argv-only (never through a shell) with context cancellation. Every mutation
// goes through Host, which records it as a Change and, in a dry-run, records it without
// doing it, so the dry-run and the real run share one code path and the dry-run is honest.
// Every mutation is checked first: writing identical content, or a command whose check says
// it is already done, records nothing, so a second run reports "no changes".
//
// A file change is recorded with a diff of its lines, which viewers can read. A write of a
// file that holds secrets says so (the Secret option) and is recorded without its content;
// as a safety net, a file holding a private key is never diffed and any diff line that
// looks like a secret (package secret) is masked.
package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/secret"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Host is one task's view of the machine.
type Host struct {
	// Root prefixes every path ("/" on a real host).
	Root string
	// DryRun records changes without making them.
	DryRun bool
	// Log receives the output lines of commands; may be nil.
	Log func(stream, line string)
	// CRISocket is the container runtime's CRI socket, a host path (under Root) or a
	// unix:// URL of one; empty means the runtime package's default (containerd's).
	CRISocket string

	mu      sync.Mutex
	changes []*taskv1.Change
}

// Path maps a host path into Root.
func (h *Host) Path(p string) string {
	if !filepath.IsAbs(p) {
		p = "/" + p
	}
	return filepath.Join(h.Root, filepath.Clean(p))
}

// Changes are the changes made (or, in a dry-run, that would be made).
func (h *Host) Changes() []*taskv1.Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*taskv1.Change(nil), h.changes...)
}

// Record notes a change made through another API (for example the CRI): the caller checks
// h.DryRun and skips the action itself.
func (h *Host) Record(kind, target, detail string) { h.record(kind, target, detail) }

func (h *Host) record(kind, target, detail string) {
	h.mu.Lock()
	h.changes = append(h.changes, &taskv1.Change{Kind: kind, Target: target, Detail: detail})
	h.mu.Unlock()
}

// ReadFile reads a host file.
func (h *Host) ReadFile(p string) ([]byte, error) { return os.ReadFile(h.Path(p)) }

// Exists reports whether a host path exists.
func (h *Host) Exists(p string) bool {
	_, err := os.Stat(h.Path(p))
	return err == nil
}

// WriteOption qualifies a file write.
type WriteOption int

// Secret marks a file that holds secrets (a join config with its token, a key, a
// kubeconfig with a client key): its change is recorded without content.
const Secret WriteOption = 1

// WriteFile makes the host file p hold data with mode, creating parent directories. It
// does nothing (and records nothing) when the file already holds exactly that.
func (h *Host) WriteFile(p string, data []byte, mode fs.FileMode, opts ...WriteOption) (bool, error) {
	full := h.Path(p)
	old, err := os.ReadFile(full)
	exists := err == nil
	if exists && bytes.Equal(old, data) {
		if st, err := os.Stat(full); err == nil && st.Mode().Perm() == mode.Perm() {
			return false, nil
		}
	}
	isSecret := false
	for _, o := range opts {
		isSecret = isSecret || o == Secret
	}
	// The safety net: a private key is never diffed, whoever writes it (a program holds
	// none: NUL bytes are no text).
	isSecret = isSecret || (!binary(data) && secret.HasPrivateKey(data)) || (exists && !binary(old) && secret.HasPrivateKey(old))
	// A program or any large file is described by its size alone: a line diff of megabytes
	// would cost seconds and say nothing, and a digest would let a reader test guesses of
	// content Deckhand did not write.
	opaque := len(data) > MaxDiffBytes || binary(data) || (exists && (len(old) > MaxDiffBytes || binary(old)))
	detail := "create"
	switch {
	case exists && bytes.Equal(old, data):
		detail = "mode changed"
	case opaque && !isSecret && exists:
		detail = fmt.Sprintf("update: %d bytes, %d before", len(data), len(old))
	case opaque && !isSecret:
		detail = fmt.Sprintf("create: %d bytes", len(data))
	case isSecret && exists:
		detail = "update (content not shown: the file holds secrets)"
	case isSecret:
		detail = "create (content not shown: the file holds secrets)"
	case exists:
		detail = diffSummary(old, data)
	}
	h.record("file", p, detail)
	if h.DryRun {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	tmp := full + ".deckhand-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, full); err != nil {
		return false, fmt.Errorf("write %s: %w", p, err)
	}
	return true, nil
}

// Symlink makes host path link a symbolic link to host path target, written relative to
// link's directory so it resolves inside the host's root (--root) too. A link to target
// already there is no change; any other file there is left and reported.
func (h *Host) Symlink(target, link string) (bool, error) {
	rel, err := filepath.Rel(filepath.Dir(filepath.Clean("/"+link)), filepath.Clean("/"+target))
	if err != nil {
		return false, err
	}
	full := h.Path(link)
	if cur, err := os.Readlink(full); err == nil && cur == rel {
		return false, nil
	}
	if _, err := os.Lstat(full); err == nil {
		return false, fmt.Errorf("link %s: something else is there; it is left as it is", link)
	}
	h.record("link", link, "-> "+target)
	if h.DryRun {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return false, err
	}
	return true, os.Symlink(rel, full)
}

// RemoveFile deletes a host file if present.
func (h *Host) RemoveFile(p string) (bool, error) {
	if !h.Exists(p) {
		return false, nil
	}
	h.record("file", p, "remove")
	if h.DryRun {
		return true, nil
	}
	return true, os.Remove(h.Path(p))
}

// RemoveAll deletes a host directory (or file) with everything in it, if present. The
// host's root itself is never removed.
func (h *Host) RemoveAll(p string) (bool, error) {
	if filepath.Clean("/"+p) == "/" {
		return false, fmt.Errorf("remove %q: refusing to remove the host's root", p)
	}
	if _, err := os.Lstat(h.Path(p)); err != nil {
		return false, nil
	}
	h.record("file", p, "remove with its contents")
	if h.DryRun {
		return true, nil
	}
	return true, os.RemoveAll(h.Path(p))
}

// MaxDiffBytes is the largest file a change is described by a diff of its lines.
const MaxDiffBytes = 1 << 20

// binary says whether data is no text: a NUL byte in its first 8 KiB, as git decides.
func binary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), 8<<10)], 0) >= 0
}

// diffSummary describes a file change by the lines it adds and removes, with every line
// that looks like a secret masked.
func diffSummary(old, data []byte) string {
	oldLines := map[string]int{}
	for _, l := range strings.Split(string(old), "\n") {
		oldLines[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		if oldLines[l] > 0 {
			oldLines[l]--
			continue
		}
		fmt.Fprintf(&b, "+%s\n", l)
	}
	for _, l := range strings.Split(string(old), "\n") {
		if oldLines[l] > 0 {
			oldLines[l]--
			fmt.Fprintf(&b, "-%s\n", l)
		}
	}
	if b.Len() == 0 {
		return "mode changed"
	}
	return secret.Mask(strings.TrimRight(b.String(), "\n"))
}

// Query runs a read-only command (it runs in a dry-run too) and returns its stdout.
func (h *Host) Query(ctx context.Context, argv ...string) ([]byte, error) {
	return h.exec(ctx, argv)
}

// QueryQuiet is Query without logging the command's output: for a check polled in a loop,
// whose caller logs what changes.
func (h *Host) QueryQuiet(ctx context.Context, argv ...string) ([]byte, error) {
	return h.execLog(ctx, argv, false)
}

// Run runs a mutating command: recorded as a change, skipped in a dry-run.
func (h *Host) Run(ctx context.Context, what string, argv ...string) error {
	h.record("command", strings.Join(argv, " "), what)
	if h.DryRun {
		return nil
	}
	_, err := h.exec(ctx, argv)
	return err
}

// Generation reads the number a task stored in file p to order the lists it was sent
// (routes, API servers): 0 when there is none.
func (h *Host) Generation(p string) uint64 {
	b, err := h.ReadFile(p)
	if err != nil {
		return 0
	}
	g, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return g
}

// OS is what the host's /etc/os-release (else /usr/lib/os-release) says.
func (h *Host) OS() hostos.OS {
	b, err := h.ReadFile("/etc/os-release")
	if err != nil {
		b, _ = h.ReadFile("/usr/lib/os-release")
	}
	return hostos.Parse(b)
}

// OSFamily is the host's package family (see hostos.OS.Family): hostos.Deb, hostos.RPM,
// or "" for an OS Deckhand has no package recipe for.
func (h *Host) OSFamily() hostos.Family { return h.OS().Family() }

// Has reports whether a command is installed on the host.
func (h *Host) Has(name string) bool {
	_, err := h.lookPath(name)
	return err == nil
}

// AppendLine adds line to a host file unless a line equal to it is already there.
func (h *Host) AppendLine(p, line string, mode fs.FileMode) (bool, error) {
	old, err := h.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	for _, l := range strings.Split(string(old), "\n") {
		if strings.TrimSpace(l) == strings.TrimSpace(line) {
			return false, nil
		}
	}
	content := string(old)
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	return h.WriteFile(p, []byte(content+line+"\n"), mode)
}

// RunOutput runs a mutating command and returns its stdout: recorded as a change, skipped
// (nil output) in a dry-run. Its output lines are not logged: they may carry secrets, and
// the caller logs what is safe.
func (h *Host) RunOutput(ctx context.Context, what string, argv ...string) ([]byte, error) {
	h.record("command", strings.Join(argv, " "), what)
	if h.DryRun {
		return nil, nil
	}
	return h.execLog(ctx, argv, false)
}

// RunInput runs a mutating command with input on its stdin: recorded as a change, skipped
// in a dry-run.
func (h *Host) RunInput(ctx context.Context, what string, input []byte, argv ...string) error {
	h.record("command", strings.Join(argv, " "), what)
	if h.DryRun {
		return nil
	}
	bin, err := h.lookPath(argv[0])
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Stdin = bytes.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", argv[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ErrNotFound: a command's binary is not on the host.
var ErrNotFound = errors.New("command not found")

func (h *Host) exec(ctx context.Context, argv []string) ([]byte, error) {
	return h.execLog(ctx, argv, true)
}

func (h *Host) execLog(ctx context.Context, argv []string, logOutput bool) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	bin, err := h.lookPath(argv[0])
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	if h.Log != nil && logOutput {
		for _, l := range strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n") {
			if l != "" {
				h.Log("stdout", l)
			}
		}
		for _, l := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
			if l != "" {
				h.Log("stderr", l)
			}
		}
	}
	if err != nil {
		return stdout.Bytes(), &CommandError{Argv: argv, Err: err, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// CommandError is a command that failed: how it failed (usually an *exec.ExitError) and
// all it wrote to stderr, for callers that look for a known message in it.
type CommandError struct {
	Argv   []string
	Err    error
	Stderr string
}

// Error is the command, how it failed and the end of its stderr.
func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 400 {
		msg = msg[len(msg)-400:]
	}
	return fmt.Sprintf("%s: %v: %s", e.Argv[0], e.Err, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// lookPath finds a binary under Root's usual directories, then on the agent's PATH.
func (h *Host) lookPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		p := h.Path(name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := h.Path(filepath.Join(dir, name))
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s is not installed on the host", ErrNotFound, name)
}

// ToTheEnd is the context for a command that must not be stopped half way (a package
// manager's install, kubeadm upgrade): once started, a cancel of the task (or its step's
// deadline) does not kill it, so the host is left before or after the command, never in
// between; bound still ends a hung one. A task already cancelled gets its own context back:
// the command does not start. log, when not nil, is called once with the reason if the task
// ends while the command runs.
func ToTheEnd(ctx context.Context, bound time.Duration, log func(reason error)) (context.Context, context.CancelFunc) {
	if ctx.Err() != nil {
		return ctx, func() {}
	}
	run, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	if log == nil {
		return run, cancel
	}
	stop := context.AfterFunc(ctx, func() { log(ctx.Err()) })
	return run, func() { stop(); cancel() }
}

// Stopped says why a task's context ended, for a log line: "cancel asked" or "the step's
// time is up".
func Stopped(reason error) string {
	if errors.Is(reason, context.DeadlineExceeded) {
		return "the step's time is up"
	}
	return "cancel asked"
}

// InstallBound ends a package manager run that a cancel waits for but that hangs.
const InstallBound = 15 * time.Minute

// RunToTheEnd runs a package manager (apt-get, dnf): a cancel of its task waits for it, at
// most InstallBound, since one killed half way leaves the package database for a human to
// repair; logf says so when it happens.
func (h *Host) RunToTheEnd(ctx context.Context, logf func(string, ...any), what string, argv ...string) error {
	run, stop := ToTheEnd(ctx, InstallBound, func(reason error) {
		logf("%s: %s runs to its end first (the package manager is not stopped half way)", Stopped(reason), what)
	})
	defer stop()
	err := h.Run(run, what, argv...)
	if ctx.Err() != nil && run.Err() == nil {
		logf("%s ended after the task was stopped (error: %v)", what, err)
	}
	return err
}

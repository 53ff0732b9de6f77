package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive flock on a host file. The commands run with Lock.RunOutput inherit
// it, so it is held until both the agent has unlocked it and those commands have exited:
// a command left running by an agent that was killed keeps it, and the next agent waits
// for that command instead of starting a second one next to it.
type Lock struct {
	h *Host
	f *os.File // nil: nothing to hold (a dry-run on a host that never had the lock file)
}

// lockPoll is how often Lock retries a held lock.
const lockPoll = 100 * time.Millisecond

// Lock takes the exclusive lock on the host file p, creating it (and its directory, 0700)
// if needed. While another process holds it, it calls waiting once and retries until the
// lock is free or ctx ends. In a dry-run it creates nothing: it waits only for a lock
// file that already exists.
func (h *Host) Lock(ctx context.Context, p string, waiting func()) (*Lock, error) {
	full := h.Path(p)
	var f *os.File
	var err error
	if h.DryRun {
		f, err = os.Open(full)
		if errors.Is(err, fs.ErrNotExist) {
			return &Lock{h: h}, nil
		}
	} else {
		if err = os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		f, err = os.OpenFile(full, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{h: h, f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// Unlock releases the agent's hold on the lock. Commands still running with it keep it
// until they exit.
func (l *Lock) Unlock() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// RunOutput is Host.RunOutput for a command that must hold the lock as long as it runs:
// the command inherits the lock (as its file descriptor 3), and its stdout and stderr go
// to unlinked files rather than pipes, so that if the agent dies the command neither loses
// the lock nor dies of SIGPIPE on its next line of output, and runs to its end.
func (l *Lock) RunOutput(ctx context.Context, what string, argv ...string) ([]byte, error) {
	h := l.h
	h.record("command", strings.Join(argv, " "), what)
	if h.DryRun {
		return nil, nil
	}
	if l.f == nil {
		return nil, errors.New("run with a lock that was released")
	}
	bin, err := h.lookPath(argv[0])
	if err != nil {
		return nil, err
	}
	stdout, err := unlinkedTemp()
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := unlinkedTemp()
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{l.f}
	runErr := cmd.Run()
	out, err := readAll(stdout)
	if err != nil {
		return nil, err
	}
	errOut, err := readAll(stderr)
	if err != nil {
		return nil, err
	}
	if runErr != nil {
		return out, &CommandError{Argv: argv, Err: runErr, Stderr: string(errOut)}
	}
	return out, nil
}

// unlinkedTemp is a private temporary file with no name: it goes away when the last
// process holding it closes it.
func unlinkedTemp() (*os.File, error) {
	f, err := os.CreateTemp("", "deckhand-cmd-*")
	if err != nil {
		return nil, fmt.Errorf("command output file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("command output file: %w", err)
	}
	return f, nil
}

func readAll(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read command output: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read command output: %w", err)
	}
	return b, nil
}

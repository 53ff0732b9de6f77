package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// Files of a replica's data dir.
const (
	raftDBFile   = "raft.db"
	memberFileN  = "member.json"
	snapshotsDir = "snapshots"
)

// recoverHint is how to bring a damaged replica back, appended to every refusal.
const recoverHint = "restore the whole data dir from a backup of this replica, or remove the replica from the cluster (deckctl members remove NAME) and start it again with an empty --data-dir and --join (it then copies the state from a peer)"

// checkDataDir refuses a data dir whose raft state is damaged or incomplete, before
// anything in it is opened for writing (so a refused start leaves every file as it was).
// Starting anyway would lose acknowledged writes and the replica's term and vote (raft.db
// lost beside a snapshot), panic (a corrupt raft.db) or idle forever (member.json lost, or
// raft.db and the snapshots lost).
func checkDataDir(dir string, meta memberFile, joining bool) error {
	if meta.Store != "" && meta.Store != "raft" {
		return fmt.Errorf("data dir %s belongs to a controller with --store %s: start it with --store %s (and the same --etcd-endpoints and --etcd-prefix), or use an empty --data-dir for the embedded store", dir, meta.Store, meta.Store)
	}
	dbPath := filepath.Join(dir, raftDBFile)
	snaps, err := hasSnapshots(dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(dbPath)
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0):
		what := "missing"
		if err == nil {
			what = "empty"
		}
		switch {
		case snaps:
			return fmt.Errorf("data dir %s is damaged: the raft log %s is %s but snapshots exist, so the writes after the last snapshot and this replica's term and vote are gone; %s", dir, raftDBFile, what, recoverHint)
		case meta.ClusterID != "":
			return fmt.Errorf("data dir %s is damaged: %s says this replica belongs to cluster %s but the raft log %s is %s and there are no snapshots; %s", dir, memberFileN, meta.ClusterID, raftDBFile, what, recoverHint)
		}
		return nil // a fresh data dir
	case err != nil:
		return fmt.Errorf("data dir %s: read %s: %v; fix its permissions", dir, raftDBFile, errors.Unwrap(err))
	}
	state, err := inspectLog(dbPath)
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("%w: %s is locked; stop the other deckhand-controller or choose another --data-dir", ErrDataDirInUse, dbPath)
		}
		return fmt.Errorf("data dir %s is damaged: the raft log %s cannot be read (%v); %s", dir, raftDBFile, err, recoverHint)
	}
	state = state || snaps
	switch {
	case state && meta.ClusterID == "":
		return fmt.Errorf("data dir %s is damaged: it holds raft state but no %s (the replica's name and cluster); restore %s from a backup of this replica, or %s", dir, memberFileN, memberFileN, recoverHint)
	case !state && meta.ClusterID != "" && !joining:
		return fmt.Errorf("data dir %s is damaged: %s says this replica belongs to cluster %s but the raft log %s holds no entries and there are no snapshots; %s", dir, memberFileN, meta.ClusterID, raftDBFile, recoverHint)
	}
	return nil
}

// hasSnapshots reports whether the data dir holds a complete raft snapshot.
func hasSnapshots(dir string) (bool, error) {
	entries, err := os.ReadDir(filepath.Join(dir, snapshotsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("data dir %s: read %s: %v; fix its permissions", dir, snapshotsDir, errors.Unwrap(err))
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, snapshotsDir, e.Name(), "meta.json")); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// inspectLog opens raft.db read-only, reads every page a start would read and reports
// whether it holds raft state (log entries or a term). bbolt panics on some corrupt
// pages; that panic becomes the error.
func inspectLog(path string) (state bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			state, err = false, fmt.Errorf("%v", r)
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return false, err
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			n := 0
			if err := b.ForEach(func(k, v []byte) error {
				n++
				if string(name) == "conf" && string(k) == "CurrentTerm" && len(v) == 8 && binary.BigEndian.Uint64(v) > 0 {
					state = true
				}
				return nil
			}); err != nil {
				return err
			}
			if string(name) == "logs" && n > 0 {
				state = true
			}
			return nil
		})
	})
	return state, err
}

// Permissions of the data dir: it holds the cluster CA key (in every snapshot) and the
// replica's keys, so nothing in it is readable by other local users.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// SecureDataDir makes dir 0700 and removes group and other permissions from everything in
// it. It fails, with what to do, when it cannot (the data dir belongs to another user).
func SecureDataDir(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("secure data dir %s: %v; fix its permissions or choose another --data-dir", dir, err)
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a temporary file)
			}
			return err
		}
		want := info.Mode().Perm() &^ 0o077
		if p == dir {
			want = dirMode
		} else if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if info.Mode().Perm() == want {
			return nil
		}
		if err := os.Chmod(p, want); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("data dir %s holds secrets but %s cannot be made private (mode %v): %v; make it owned by the user running deckhand-controller (chown), or choose another --data-dir", dir, p, info.Mode().Perm(), errors.Unwrap(err))
		}
		return nil
	})
}

// privateSnapshots is raft's file snapshot store with every finished snapshot made
// private (raft writes them 0644 in 0755 directories; the data dir is 0700 meanwhile).
type privateSnapshots struct {
	*raft.FileSnapshotStore
	dir string
}

func (p privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := p.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return privateSink{SnapshotSink: sink, dir: filepath.Join(p.dir, snapshotsDir)}, nil
}

type privateSink struct {
	raft.SnapshotSink
	dir string
}

func (s privateSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	return restrictTree(filepath.Join(s.dir, s.ID()))
}

// restrictTree removes group and other permissions below root.
func restrictTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fileMode
		if d.IsDir() {
			mode = dirMode
		}
		return os.Chmod(p, mode)
	})
}

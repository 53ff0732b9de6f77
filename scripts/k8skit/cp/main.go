// Command cp is the lab kit's file copier (lab tooling, never part of a product binary): the
// images of flannel and its CNI plugin carry it as /bin/cp because flannel's upstream
// manifest installs the CNI plugin and configuration with `cp -f SRC DST` in init
// containers. It copies one regular file, replacing DST atomically with SRC's mode.
//
//	cp [-f] SRC DST
//	cp --version
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const version = "cp (deckhand lab kit) 1"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Println(version)
		return nil
	}
	if len(args) > 0 && args[0] == "-f" {
		args = args[1:] // DST is always replaced
	}
	if len(args) != 2 {
		return fmt.Errorf("usage: cp [-f] SRC DST")
	}
	return copyFile(args[0], args[1])
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if d, err := os.Stat(dst); err == nil && d.IsDir() {
		dst = filepath.Join(dst, filepath.Base(src))
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

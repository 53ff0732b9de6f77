// Package gpgkit makes OpenPGP signing keys with the real gpg for tests: a package
// repository's key, a wrong one. Test tooling only.
package gpgkit

import (
	"os/exec"
	"strings"
	"testing"
)

// Key is a signing key in a gpg home of its own.
type Key struct {
	// Home is the key's GNUPGHOME; Name its user ID.
	Home, Name string
	// Fingerprint as gpg shows it (40 upper-case hex digits), and the public key, armored.
	Fingerprint string
	Armored     []byte
}

// New makes an RSA signing key without a passphrase named name.
func New(t testing.TB, name string) *Key {
	t.Helper()
	k := &Key{Home: t.TempDir(), Name: name + " <" + strings.ReplaceAll(strings.ToLower(name), " ", "-") + "@deckhand.invalid>"}
	k.GPG(t, "--quick-gen-key", k.Name, "rsa3072", "sign", "never")
	k.Armored = k.GPG(t, "--armor", "--export")
	for _, l := range strings.Split(string(k.GPG(t, "--with-colons", "--fingerprint")), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && len(f) > 9 && k.Fingerprint == "" {
			k.Fingerprint = f[9]
		}
	}
	if k.Fingerprint == "" {
		t.Fatal("gpg showed no fingerprint for the new key")
	}
	return k
}

// GPG runs gpg on the key's home, without a terminal, and returns its output.
func (k *Key) GPG(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", k.Home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("gpg %v: %v\n%s", args, err, stderr)
	}
	return out
}

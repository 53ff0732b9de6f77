package pgpkey

import (
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/testkit/gpgkit"
)

// gpgKey makes a signing key with the real gpg in a home of its own and exports it, armored
// and binary, with the fingerprint gpg itself shows.
func gpgKey(t *testing.T, algo string) (armored, binary []byte, fpr string) {
	t.Helper()
	k := &gpgkit.Key{Home: t.TempDir(), Name: "Deckhand test <test@deckhand.invalid>"}
	k.GPG(t, "--quick-gen-key", k.Name, algo, "sign", "never")
	for _, l := range strings.Split(string(k.GPG(t, "--with-colons", "--fingerprint")), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && fpr == "" {
			fpr = f[9]
		}
	}
	return k.GPG(t, "--armor", "--export"), k.GPG(t, "--export"), fpr
}

// The fingerprint is the one gpg shows, armored or binary, for RSA and EdDSA keys alike.
func TestFingerprintIsGPGs(t *testing.T) {
	for _, algo := range []string{"rsa3072", "ed25519"} {
		armored, binary, want := gpgKey(t, algo)
		for what, data := range map[string][]byte{"armored": armored, "binary": binary} {
			got, err := Fingerprint(data)
			if err != nil || got != want {
				t.Fatalf("%s %s key: fingerprint %q %v, gpg says %q", algo, what, got, err, want)
			}
		}
		// Two keys in one file: both, in order.
		_, other, second := gpgKey(t, algo)
		fps, err := Fingerprints(append(append([]byte{}, binary...), other...))
		if err != nil || len(fps) != 2 || fps[0] != want || fps[1] != second {
			t.Fatalf("two keys: %v %v, want %s and %s", fps, err, want, second)
		}
	}
}

// What is not a whole public key is refused with a reason, never given a fingerprint.
func TestFingerprintRefusals(t *testing.T) {
	armored, binary, _ := gpgKey(t, "ed25519")
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":          {nil, "no public key packet"},
		"text":           {[]byte("hello"), "not an OpenPGP packet"},
		"truncated":      {binary[:len(binary)/2], "truncated"},
		"no END line":    {[]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n"), "without its END line"},
		"not base64":     {[]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"), "not base64"},
		"a signature":    {[]byte{0xc2, 0x01, 0x04}, "not a public key"},
		"too large":      {make([]byte, MaxKeySize+1), "more than"},
		"v3 key":         {[]byte{0x99, 0x00, 0x01, 0x03}, "version 3"},
		"partial length": {[]byte{0xc6, 0xe1, 0x00}, "partial lengths"},
		// A key followed by a secret key packet (tag 5), or a literal data packet (tag 11):
		// gpg would import or act on them.
		"a secret key after it": {append(append([]byte{}, binary...), 0x94, 0x01, 0x04), "tag 5"},
		"a literal after it":    {append(append([]byte{}, binary...), 0xac, 0x01, 0x62), "tag 11"},
		"text before the armor": {append([]byte("hello\n"), armored...), "more than public key blocks"},
		"a private block after": {append(armored, []byte("\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQ==\n-----END PGP PRIVATE KEY BLOCK-----\n")...), "more than public key blocks"},
		"a message block only":  {[]byte("-----BEGIN PGP MESSAGE-----\n\nowE=\n-----END PGP MESSAGE-----\n"), "more than public key blocks"},
	} {
		fp, err := Fingerprint(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q %v, want an error with %q", name, fp, err, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	docker := "060A61C51B558A7F742B77AAC52FEB6B621E9F35"
	for in, want := range map[string]string{
		"060A 61C5 1B55 8A7F 742B 77AA C52F EB6B 621E 9F35": docker,
		"0x060a61c51b558a7f742b77aac52feb6b621e9f35":        docker,
		" " + docker + " ": docker,
		"621E9F35":         "",
		docker + "00":      "",
		"ZZ" + docker[2:]:  "",
	} {
		got, err := Normalize(in)
		if (want == "") != (err != nil) || got != want {
			t.Errorf("Normalize(%q) = %q %v, want %q", in, got, err, want)
		}
	}
}

func FuzzFingerprints(f *testing.F) {
	f.Add([]byte{0x99, 0x00, 0x01, 0x04})
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fps, err := Fingerprints(data)
		if err == nil && len(fps) == 0 {
			t.Fatal("no error and no fingerprint")
		}
	})
}

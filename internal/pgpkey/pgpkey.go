// Package pgpkey reads the fingerprint of an OpenPGP public key (RFC 4880, RFC 9580): what
// a package repository's signing key is pinned by. It reads the key's packets only; it
// verifies no signature (the package manager does, with the key once its fingerprint is the
// pinned one).
package pgpkey

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MaxKeySize bounds a key file: a repository key with its signatures is a few kB.
const MaxKeySize = 256 << 10

// Packet tags of a transferable public key (RFC 9580 10.1): the key, then its signatures,
// user IDs, user attributes and subkeys; nothing else may be in a key file.
const (
	tagPublicKey    = 6
	tagPublicSubkey = 14
)

var keyPackets = map[int]bool{tagPublicKey: true, tagPublicSubkey: true, 2: true, 13: true, 17: true}

// Fingerprint is the primary key's fingerprint of the first key in data (ASCII-armored or
// binary), in upper-case hex: 40 digits for a v4 key, 64 for a v6 one.
func Fingerprint(data []byte) (string, error) {
	fps, err := Fingerprints(data)
	if err != nil {
		return "", err
	}
	return fps[0], nil
}

// Fingerprints are the fingerprints of every primary key in data, in order (a key file
// may hold several keys, as a repository's does while it rotates its key).
func Fingerprints(data []byte) ([]string, error) {
	if len(data) > MaxKeySize {
		return nil, fmt.Errorf("the key file has %d bytes, more than the %d a public key has", len(data), MaxKeySize)
	}
	raw := data
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		var err error
		if raw, err = dearmor(data); err != nil {
			return nil, err
		}
	}
	var out []string
	for len(raw) > 0 {
		tag, body, rest, err := packet(raw)
		if err != nil {
			return nil, err
		}
		raw = rest
		if tag != tagPublicKey {
			if !keyPackets[tag] {
				// A secret key, a message, a literal: gpg would import or act on it, and
				// it is no part of a public key.
				return nil, fmt.Errorf("not an OpenPGP public key: it holds a packet of tag %d, which a public key has none of", tag)
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("not an OpenPGP public key: it starts with a packet of tag %d, not a public key (6)", tag)
			}
			continue // a subkey, a user ID, a signature of a key already read
		}
		fp, err := fingerprint(body)
		if err != nil {
			return nil, err
		}
		out = append(out, fp)
	}
	if len(out) == 0 {
		return nil, errors.New("not an OpenPGP public key: no public key packet")
	}
	return out, nil
}

// Normalize is a fingerprint as given by a person ("060A 61C5 1B55 ...", lower case, a
// 0x prefix) in Fingerprint's form, or an error saying what is wrong with it.
func Normalize(fp string) (string, error) {
	s := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(fp), "0x"), " ", ""))
	if _, err := hex.DecodeString(s); err != nil || (len(s) != 40 && len(s) != 64) {
		return "", fmt.Errorf("%q is not an OpenPGP key fingerprint: give its 40 hex digits (64 for a v6 key), as gpg --show-keys prints them", fp)
	}
	return s, nil
}

// fingerprint of a public key packet's body: v4 is SHA-1 of 0x99, the 2-byte length and
// the body; v6 is SHA-256 of 0x9B, the 4-byte length and the body.
func fingerprint(body []byte) (string, error) {
	if len(body) == 0 {
		return "", errors.New("an empty public key packet")
	}
	switch body[0] {
	case 4:
		if len(body) > 0xffff {
			return "", errors.New("a v4 public key packet longer than 65535 bytes")
		}
		h := sha1.New()
		h.Write([]byte{0x99, byte(len(body) >> 8), byte(len(body))})
		h.Write(body)
		return strings.ToUpper(hex.EncodeToString(h.Sum(nil))), nil
	case 6:
		h := sha256.New()
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(body)))
		h.Write([]byte{0x9b})
		h.Write(n[:])
		h.Write(body)
		return strings.ToUpper(hex.EncodeToString(h.Sum(nil))), nil
	}
	return "", fmt.Errorf("a version %d public key: only v4 and v6 keys are read", body[0])
}

// packet splits the first packet off data: its tag, body and what follows.
func packet(data []byte) (tag int, body, rest []byte, err error) {
	b := data[0]
	if b&0x80 == 0 {
		return 0, nil, nil, errors.New("not an OpenPGP packet (its first bit is not set)")
	}
	var n, hdr int
	if b&0x40 == 0 { // the old format
		tag = int(b>>2) & 0xf
		switch b & 3 {
		case 0:
			hdr = 2
		case 1:
			hdr = 3
		case 2:
			hdr = 5
		default:
			return 0, nil, nil, errors.New("an OpenPGP packet of indeterminate length")
		}
		if len(data) < hdr {
			return 0, nil, nil, errors.New("a truncated OpenPGP packet header")
		}
		for _, c := range data[1:hdr] {
			n = n<<8 | int(c)
		}
	} else { // the new format
		tag = int(b & 0x3f)
		if len(data) < 2 {
			return 0, nil, nil, errors.New("a truncated OpenPGP packet header")
		}
		switch o := int(data[1]); {
		case o < 192:
			n, hdr = o, 2
		case o < 224:
			if len(data) < 3 {
				return 0, nil, nil, errors.New("a truncated OpenPGP packet header")
			}
			n, hdr = (o-192)<<8+int(data[2])+192, 3
		case o == 255:
			if len(data) < 6 {
				return 0, nil, nil, errors.New("a truncated OpenPGP packet header")
			}
			n, hdr = int(binary.BigEndian.Uint32(data[2:6])), 6
		default:
			return 0, nil, nil, errors.New("an OpenPGP packet of partial lengths, which a key has none of")
		}
	}
	if n < 0 || n > len(data)-hdr {
		return 0, nil, nil, errors.New("a truncated OpenPGP packet")
	}
	return tag, data[hdr : hdr+n], data[hdr+n:], nil
}

// dearmor decodes every ASCII-armored public key block in data, one after the other (a
// file of two keys makes dnf trust both); anything else in the file but white space (another
// kind of armored block, binary data) is refused.
func dearmor(data []byte) ([]byte, error) {
	var out []byte
	rest := string(data)
	for {
		before, block, ok := strings.Cut(rest, "-----BEGIN PGP PUBLIC KEY BLOCK-----")
		if strings.TrimSpace(before) != "" {
			return nil, errors.New("not an OpenPGP public key file: it holds more than public key blocks")
		}
		if !ok {
			if out == nil {
				return nil, errors.New("not an OpenPGP public key file: no public key block")
			}
			return out, nil
		}
		block, after, ok := strings.Cut(block, "-----END PGP PUBLIC KEY BLOCK-----")
		if !ok {
			return nil, errors.New("an armored key without its END line")
		}
		raw, err := dearmorBlock(block)
		if err != nil {
			return nil, err
		}
		out, rest = append(out, raw...), after
	}
}

// dearmorBlock decodes one armored block's body (its checksum line, optional since RFC
// 9580, is not checked: the fingerprint is).
func dearmorBlock(s string) ([]byte, error) {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	// Armor headers ("Version: ...") run up to the first blank line.
	start := 0
	for i, l := range lines {
		if i > 0 && strings.TrimSpace(l) == "" {
			start = i + 1
			break
		}
		if i > 0 && !strings.Contains(l, ": ") {
			start = i // no headers and no blank line
			break
		}
	}
	var b64 strings.Builder
	for _, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "=") {
			break // the checksum
		}
		b64.WriteString(l)
	}
	raw, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		return nil, fmt.Errorf("the armored key is not base64: %w", err)
	}
	if len(raw) == 0 {
		return nil, errors.New("an empty armored key")
	}
	return raw, nil
}

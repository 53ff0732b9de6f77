package secret

import (
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Redacted replaces a masked secret.
const Redacted = "<redacted>"

// minValueLen is the shortest value masked by value: shorter strings (a token ID, an
// empty field) are not secrets and would mask unrelated text.
const minValueLen = 8

var (
	// tokenRE has no word boundaries: a token glued to other text ("%3Aabcdef.…") is
	// masked too, at the price of masking the odd "xxxxxx.yyyyyyyyyyyyyyyy" that is none.
	tokenRE = regexp.MustCompile(`([a-z0-9]{6})\.[a-z0-9]{16}`)
	// certKeyRE is a certificate key after a name that says what it is.
	certKeyRE = regexp.MustCompile(`(?i)(certificate[-_ ]?key["']?\s*[:=]?\s*["']?)[0-9a-f]{64}`)
	// hexLineRE is a certificate key alone on its line, as kubeadm upload-certs prints it.
	hexLineRE = regexp.MustCompile(`(?m)^(\s*)[0-9a-f]{64}(\s*)$`)
	// keyLineRE is a "key: value" or "key=value" line whose key names a credential; a diff
	// line's leading '+' or '-' is allowed.
	keyLineRE = regexp.MustCompile(`(?im)^([-+]?\s*(?:-\s+)?["']?(?:[\w-]*token|[\w-]*certificate[-_]?key|client-key(?:-data)?|[\w-]*private[-_]?key|password|secret)["']?\s*[:=]\s*)(\S.*?)\s*$`)
	pemRE     = regexp.MustCompile(`(?s)(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----).*?(-----END [A-Z0-9 ]*PRIVATE KEY-----)`)
	// pemBeginRE and pemEndRE find a private key block split over several log lines.
	pemBeginRE = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----`)
	pemEndRE   = regexp.MustCompile(`-----END [A-Z0-9 ]*PRIVATE KEY-----`)
)

// Mask hides, in s, everything that looks like a secret. Each pattern runs only when a
// cheap test says it could match: most log lines cost a few substring searches.
func Mask(s string) string {
	if s == "" {
		return s
	}
	if strings.Contains(s, "PRIVATE KEY") {
		s = pemRE.ReplaceAllString(s, "$1 "+Redacted+" $2")
	}
	lower := strings.ToLower(s)
	if strings.ContainsAny(s, ":=") && (strings.Contains(lower, "token") || strings.Contains(lower, "key") || strings.Contains(lower, "password") || strings.Contains(lower, "secret")) {
		s = keyLineRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := keyLineRE.FindStringSubmatch(m)
			if sub[2] == Redacted || strings.Trim(sub[2], `"'`) == "" {
				return m
			}
			return sub[1] + Redacted
		})
	}
	if len(s) < 23 { // the shortest secret below: a token
		return s
	}
	if strings.Contains(lower, "certificate") {
		s = certKeyRE.ReplaceAllString(s, "${1}"+Redacted)
	}
	if len(s) >= 64 {
		s = hexLineRE.ReplaceAllString(s, "${1}"+Redacted+"${2}")
	}
	if maybeToken(s) {
		s = tokenRE.ReplaceAllString(s, "$1."+Redacted)
	}
	return s
}

// maybeToken reports whether some '.' in s has 6 token characters before it and 16
// after it: the test that spares most lines the token regexp.
func maybeToken(s string) bool {
	tokenChar := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 6; i+16 < len(s); i++ {
		if s[i] != '.' {
			continue
		}
		ok := true
		for j := i - 6; j < i+17 && ok; j++ {
			ok = j == i || tokenChar(s[j])
		}
		if ok {
			return true
		}
	}
	return false
}

// Looks reports whether s holds something Mask would hide.
func Looks(s string) bool { return Mask(s) != s }

// HasPrivateKey reports whether data holds a PEM private key.
func HasPrivateKey(data []byte) bool { return pemBeginRE.Match(data) }

// Masker masks the secrets it was given by value, as well as everything Mask hides. It is
// safe for concurrent use. The zero value is ready.
type Masker struct {
	mu     sync.RWMutex
	values []string
}

// Add makes m mask values. Values shorter than 8 characters are ignored (they are not
// secrets: a token ID, an empty field). For a bootstrap token, its secret half is masked
// on its own too.
func (m *Masker) Add(values ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < minValueLen || v == Redacted {
			continue
		}
		add := []string{v}
		if id, sec, ok := strings.Cut(v, "."); ok && len(id) == 6 && len(sec) == 16 {
			add = append(add, sec)
		}
		for _, a := range add {
			if !slices.Contains(m.values, a) {
				m.values = append(m.values, a)
			}
		}
	}
	// Longest first, so a token is replaced whole before its secret half.
	slices.SortFunc(m.values, func(a, b string) int { return len(b) - len(a) })
}

// Mask hides the known values and everything the package's Mask hides.
func (m *Masker) Mask(s string) string {
	if s == "" {
		return s
	}
	s = Mask(s)
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, v := range m.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// LineMasker masks a stream of lines: on top of Masker.Mask, the lines of a private key
// block printed one line at a time are hidden whole. It is not safe for concurrent use.
type LineMasker struct {
	M     *Masker
	inKey bool
}

// Line masks one line.
func (l *LineMasker) Line(s string) string {
	if l.inKey {
		if pemEndRE.MatchString(s) {
			l.inKey = false
			return pemEndRE.FindString(s)
		}
		return Redacted
	}
	if pemBeginRE.MatchString(s) && !pemEndRE.MatchString(s) {
		l.inKey = true
		return pemBeginRE.FindString(s)
	}
	return l.M.Mask(s)
}

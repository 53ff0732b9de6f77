package svc

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// defaultPath is the PATH systemd gives services.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environment builds a service's environment as systemd does: a clean base (PATH,
// LANG), then Environment= in order, then each EnvironmentFile= in order (read now, at
// every start: kubeadm rewrites /var/lib/kubelet/kubeadm-flags.env before restarting the
// kubelet). A missing EnvironmentFile without the "-" prefix fails the start.
func environment(root string, u *Unit) (map[string]string, []string, error) {
	env := map[string]string{"PATH": defaultPath, "LANG": "C.UTF-8"}
	order := []string{"PATH", "LANG"}
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, kv := range u.Environment {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, f := range u.EnvironmentFiles {
		data, err := readBounded(filepath.Join(root, f.Path))
		if err != nil {
			if f.Optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, nil, fmt.Errorf("Failed to load environment files: %s: %w", f.Path, err)
		}
		for _, kv := range parseEnvFile(string(data)) {
			set(kv[0], kv[1])
		}
	}
	return env, order, nil
}

// parseEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile= does: blank lines and
// lines starting with "#" or ";" are comments; whitespace around the key and before the
// value is dropped; a value may be "double quoted" (backslash escapes \" \\ \` \$ and a
// newline), 'single quoted' (literal) or bare (backslash escapes the next character,
// trailing whitespace dropped); a backslash before a newline continues the value. Lines
// with an invalid key are skipped.
func parseEnvFile(text string) [][2]string {
	var out [][2]string
	s := strings.ReplaceAll(text, "\r\n", "\n")
	i := 0
	for i < len(s) {
		// Start of a line.
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] == '\n' {
			i++
			continue
		}
		if s[i] == '#' || s[i] == ';' {
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		}
		eq := strings.IndexAny(s[i:], "=\n")
		if eq < 0 || s[i+eq] == '\n' {
			// No "=": skip the line.
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val strings.Builder
		trailing := 0 // bare whitespace at the end of val, dropped at the end of the line
		for i < len(s) && s[i] != '\n' {
			c := s[i]
			switch c {
			case '"':
				i++
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' && i+1 < len(s) {
						switch s[i+1] {
						case '"', '\\', '`', '$':
							i++
						case '\n':
							i += 2
							continue
						}
					}
					val.WriteByte(s[i])
					i++
				}
				i++ // closing quote
				trailing = 0
			case '\'':
				i++
				for i < len(s) && s[i] != '\'' {
					val.WriteByte(s[i])
					i++
				}
				i++
				trailing = 0
			case '\\':
				if i+1 < len(s) {
					if s[i+1] != '\n' {
						val.WriteByte(s[i+1])
					}
					i += 2
				} else {
					i++
				}
				trailing = 0
			default:
				val.WriteByte(c)
				if c == ' ' || c == '\t' {
					trailing++
				} else {
					trailing = 0
				}
				i++
			}
		}
		v := val.String()
		v = v[:len(v)-trailing]
		if validEnvName(key) {
			out = append(out, [2]string{key, v})
		}
	}
	return out
}

// expandArgs expands variables in a command's words as systemd does in ExecStart= and
// ExecReload=: a word that is exactly $NAME becomes the value split into zero or more
// words (splitValue); ${NAME} anywhere in a word is replaced by the value as is, one word
// whatever it holds; "$$" is a literal "$"; $NAME inside a longer word stays as written;
// an unset variable expands to nothing.
func expandArgs(words []string, env map[string]string) []string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		if len(w) > 1 && w[0] == '$' && validEnvName(w[1:]) {
			out = append(out, splitValue(env[w[1:]])...)
			continue
		}
		out = append(out, expandBraced(w, env))
	}
	return out
}

// splitValue splits a variable's value for a $NAME word as systemd does (its
// EXTRACT_UNQUOTE|EXTRACT_RELAX split): at whitespace, 'single' and "double" quotes
// removed (an unbalanced quote runs to the end), a backslash taking the next character
// literally.
func splitValue(v string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func expandBraced(w string, env map[string]string) string {
	if !strings.Contains(w, "$") {
		return w
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] == '$' && i+1 < len(w) {
			if w[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if w[i+1] == '{' {
				if end := strings.IndexByte(w[i+2:], '}'); end >= 0 && validEnvName(w[i+2:i+2+end]) {
					b.WriteString(env[w[i+2:i+2+end]])
					i += 2 + end
					continue
				}
			}
		}
		b.WriteByte(w[i])
	}
	return b.String()
}

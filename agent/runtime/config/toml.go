package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// A tomlDoc is the small subset of TOML these files need: top-level keys, then tables of
// keys, in the order given. Values are rendered by the caller (tomlString, tomlBool,
// tomlStrings), so every string is quoted and escaped in one place.
type tomlDoc struct {
	header []string // comment lines, without "# "
	top    []kv
	tables []table
}

type kv struct{ key, value string }

type table struct {
	name string // already quoted where needed
	kvs  []kv
}

func (d tomlDoc) String() string {
	var b strings.Builder
	for _, h := range d.header {
		b.WriteString("# " + h + "\n")
	}
	for _, p := range d.top {
		fmt.Fprintf(&b, "%s = %s\n", p.key, p.value)
	}
	for _, t := range d.tables {
		fmt.Fprintf(&b, "\n[%s]\n", t.name)
		for _, p := range t.kvs {
			fmt.Fprintf(&b, "  %s = %s\n", p.key, p.value)
		}
	}
	return b.String()
}

// tomlString renders s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlBool(v bool) string {
	if v {
		return "true"
	}
	return "false"
}

func tomlStrings(ss ...string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

package bounded

import (
	"context"
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// MaxLogValue bounds one attribute (or the message) of a log line.
const MaxLogValue = 1 << 10

// String returns s when it fits in max bytes, else its longest valid-UTF-8 prefix that
// fits with the marker "… (N bytes)" appended, N being the original length. The result is
// at most max bytes (for max ≥ 32) and always valid UTF-8.
func String(s string, max int) string {
	if len(s) <= max {
		return s
	}
	marker := fmt.Sprintf("… (%d bytes)", len(s))
	cut := max - len(marker)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return toValidUTF8(s[:cut]) + marker
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]rune, 0, len(s))
	for _, r := range s {
		b = append(b, r) // invalid bytes become U+FFFD
	}
	return string(b)
}

// Handler wraps h so that no message or attribute value is longer than max bytes: a log
// line can quote a request or an agent's message, but never echo megabytes of it.
func Handler(h slog.Handler, max int) slog.Handler { return &handler{h: h, max: max} }

type handler struct {
	h   slog.Handler
	max int
}

func (b *handler) Enabled(ctx context.Context, l slog.Level) bool { return b.h.Enabled(ctx, l) }

func (b *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, String(r.Message, b.max), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(b.attr(a))
		return true
	})
	return b.h.Handle(ctx, out)
}

func (b *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, String(v.String(), b.max))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = b.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, String(x.Error(), b.max))
		case fmt.Stringer:
			return slog.String(a.Key, String(x.String(), b.max))
		case []byte:
			return slog.String(a.Key, String(string(x), b.max))
		}
		if s := fmt.Sprint(v.Any()); len(s) > b.max {
			return slog.String(a.Key, String(s, b.max))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (b *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = b.attr(a)
	}
	return &handler{h: b.h.WithAttrs(out), max: b.max}
}

func (b *handler) WithGroup(name string) slog.Handler {
	return &handler{h: b.h.WithGroup(name), max: b.max}
}

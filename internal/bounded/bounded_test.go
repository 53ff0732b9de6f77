package bounded

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStringCutsAtARuneAndSaysHowLongItWas(t *testing.T) {
	if got := String("short", 100); got != "short" {
		t.Fatalf("short string changed: %q", got)
	}
	long := strings.Repeat("é", 1000) // 2 bytes each
	got := String(long, 101)
	if len(got) > 101 || !utf8.ValidString(got) || !strings.HasSuffix(got, "… (2000 bytes)") || !strings.HasPrefix(got, "éé") {
		t.Fatalf("String(2000 bytes of é, 101) = %q (%d bytes)", got, len(got))
	}
	if got := String("\xff\xfe"+strings.Repeat("a", 100), 40); !utf8.ValidString(got) {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
}

func TestHandlerBoundsEveryValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil), 256))
	huge := strings.Repeat("n", 3<<20)
	log.With("node", huge).Info(huge, "err", errors.New(huge), "grp", slog.GroupValue(slog.String("name", huge)), "bytes", []byte(huge))
	if buf.Len() > 4<<10 {
		t.Fatalf("a log line with 3 MiB values is %d bytes", buf.Len())
	}
	if c := strings.Count(buf.String(), "(3145728 bytes)"); c != 5 {
		t.Fatalf("want 5 values marked as cut, got %d: %s", c, buf.String())
	}
}

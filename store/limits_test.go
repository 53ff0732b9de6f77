package store

import (
	"errors"
	"strings"
	"testing"
)

func TestTxnLimitsCheck(t *testing.T) {
	puts := func(n, size int) Txn {
		var tx Txn
		for range n {
			tx.Then = append(tx.Then, Put("/k", make([]byte, size)))
		}
		return tx
	}
	l := TxnLimits{Ops: 3, Bytes: 100}
	for _, c := range []struct {
		name string
		txn  Txn
		want string // "" for fits
	}{
		{"within both", puts(3, 30), ""},
		{"one operation too many", puts(4, 1), "4 operations; at most 3"},
		{"too many bytes (keys count)", puts(2, 49), "puts 102 bytes; at most 100"},
		{"deletes carry their keys", Txn{Then: []Op{Delete("/k"), Delete("/k")}}, ""},
	} {
		err := l.Check(c.txn)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if err := (TxnLimits{}).Check(puts(5000, 1000)); err != nil {
		t.Errorf("no limits: %v", err)
	}
	if got := LimitsOf(nil); got != DefaultTxnLimits {
		t.Errorf("a store without limits of its own: %+v, want etcd's defaults %+v", got, DefaultTxnLimits)
	}
}

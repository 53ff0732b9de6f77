package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Pages of List calls (AIP-158): a page holds at most page_size items and stops before
// MaxPageBytes, so a list answer stays under gRPC's default 4 MiB message limit whatever the
// records hold; next_page_token continues after the last item returned.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// MaxPageBytes bounds a page's encoded items; a single larger item is still returned
	// alone (GetNode and GetTask bound them otherwise).
	MaxPageBytes = 2 << 20
)

// pageToken is what a next_page_token encodes: which list and filter it belongs to, and the
// sort key of the last item returned. It is opaque to clients (base64 of this JSON) and
// checked when it comes back.
type pageToken struct {
	V      int    `json:"v"`
	List   string `json:"l"`
	Filter string `json:"f"`
	After  string `json:"a"`
}

// page is one request's position in a list.
type page struct {
	list, filter string
	size         int
	after        string
}

func filterDigest(filter string) string {
	sum := sha256.Sum256([]byte(filter))
	return hex.EncodeToString(sum[:8])
}

// newPage reads page_size and page_token of a request to list (a name) with filter (the
// request's other fields, which must not change between pages).
func newPage(list, filter string, size int32, token string) (*page, error) {
	p := &page{list: list, filter: filterDigest(filter), size: int(size)}
	switch {
	case size < 0:
		return nil, &fieldError{"page_size", fmt.Sprintf("is %d: give 0 (the default, %d) up to %d", size, DefaultPageSize, MaxPageSize)}
	case size == 0:
		p.size = DefaultPageSize
	case size > MaxPageSize:
		p.size = MaxPageSize
	}
	if token == "" {
		return p, nil
	}
	const hint = "pass the next_page_token of the previous page unchanged, with the same filters, or start again without a token"
	raw, err := base64.RawURLEncoding.DecodeString(token)
	var t pageToken
	if err != nil || len(raw) > 4096 || json.Unmarshal(raw, &t) != nil || t.V != 1 {
		return nil, &fieldError{"page_token", "is not a token this list returned: " + hint}
	}
	if t.List != list || t.Filter != p.filter {
		return nil, &fieldError{"page_token", "belongs to another list or other filters: " + hint}
	}
	p.after = t.After
	return p, nil
}

// take returns the items of this page from items, which are sorted by key, and the token
// of the next page ("" when this page is the last).
func take[T proto.Message](p *page, items []T, key func(T) string) ([]T, string) {
	var out []T
	bytes := 0
	for i, it := range items {
		if p.after != "" && key(it) <= p.after {
			continue
		}
		n := proto.Size(it)
		if len(out) > 0 && (len(out) == p.size || bytes+n > MaxPageBytes) {
			return out, p.token(key(items[i-1]))
		}
		out = append(out, it)
		bytes += n
	}
	return out, ""
}

func (p *page) token(after string) string {
	b, _ := json.Marshal(pageToken{V: 1, List: p.list, Filter: p.filter, After: after})
	return base64.RawURLEncoding.EncodeToString(b)
}

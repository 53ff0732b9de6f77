package kubeimages

import "testing"

func TestParseAndCompareReleases(t *testing.T) {
	for _, c := range []struct {
		v    string
		want [3]int
		ok   bool
	}{
		{"v1.34.12", [3]int{1, 34, 12}, true},
		{"1.27.3", [3]int{1, 27, 3}, true},
		{"v1.40.1", [3]int{1, 40, 1}, true}, // beyond the table
		{"latest", [3]int{}, false},
		{"v1.34", [3]int{}, false},
		{"", [3]int{}, false},
	} {
		if got, ok := ParseRelease(c.v); got != c.want || ok != c.ok {
			t.Errorf("ParseRelease(%q) = %v, %v", c.v, got, ok)
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"v1.34.12", "v1.34.12", 0}, {"1.34.12", "v1.34.12", 0}, {"v1.33.13", "v1.34.1", -1},
		{"v1.34.10", "v1.34.9", 1}, {"garbage", "v1.0.0", -1},
	} {
		if got := CompareReleases(c.a, c.b); got != c.want {
			t.Errorf("CompareReleases(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

package testcluster

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metric scrapes controller i's /metrics and returns the sum of the samples of name whose
// labels include every given pair ("reason", "facts_too_large", ...).
func (c *Cluster) Metric(i int, name string, labels ...string) (float64, error) {
	ctl := c.Controllers[i]
	if ctl.c == nil {
		return 0, fmt.Errorf("controller %d is not running", i)
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ctl.c.MetricsAddr() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var want []string
	for j := 0; j+1 < len(labels); j += 2 {
		want = append(want, labels[j]+`="`+labels[j+1]+`"`)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			lbls, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric with this name as a prefix
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(","+lbls+",", ","+w+",") {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

package main

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2 in integer nanoseconds
		{[]time.Duration{10, 30}, 20},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestDeckhandCheck(t *testing.T) {
	for _, c := range []struct {
		name, out, p50, p99, err string
	}{
		{"the last summary counts",
			"ping: 40/100 ended (40 succeeded, 0 failed), 60 running, 0 waiting, 1.2s, p50 3.1ms p99 9ms\n" +
				"ping: 100/100 ended (100 succeeded, 0 failed), 0 running, 0 waiting, 2.5s, p50 4.2ms p99 1.25s\nNODE RESULT\n",
			"4.2ms", "1.25s", ""},
		{"microseconds", "ping: 100/100 ended (100 succeeded, 0 failed), 0 running, 0 waiting, 50ms, p50 812µs p99 2.1ms", "812µs", "2.1ms", ""},
		{"a failed node", "facts: 100/100 ended (99 succeeded, 1 failed), 0 running, 0 waiting, 2s, p50 4ms p99 9ms", "", "", "99 of 100 nodes succeeded, 1 failed"},
		{"no summary", "Error: unknown flag: --nodes", "", "", "no summary line"},
		{"no quantiles", "ping: 100/100 ended (100 succeeded, 0 failed), 0 running, 0 waiting, 2s", "", "", "no p50/p99"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := deckhandCheck([]byte(c.out), 100)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil || q.p50 != c.p50 || q.p99 != c.p99 {
				t.Fatalf("got %+v, %v; want p50 %s p99 %s", q, err, c.p50, c.p99)
			}
		})
	}
}

func TestAnsibleCheck(t *testing.T) {
	ok := "fan-001 | SUCCESS => {\n    \"ping\": \"pong\"\n}\nfan-002 | CHANGED | rc=0 >>\n\n"
	if _, err := ansibleCheck([]byte(ok), 2); err != nil {
		t.Errorf("two hosts answered: %v", err)
	}
	bad := "fan-001 | SUCCESS => {}\nfan-002 | UNREACHABLE! => {\n    \"msg\": \"fan-002 | SUCCESS is not a result line\"\n}\n"
	if _, err := ansibleCheck([]byte(bad), 2); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("one host unreachable: error %v, want 1 of 2", err)
	}
}

func TestConfig(t *testing.T) {
	good := config{hosts: 100, subnet: "10.250.100", bridge: "dhfan0", nsPrefix: "dhfan-", runs: 3, forks: 50}
	if err := good.validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	hosts := good.hostList()
	if len(hosts) != 100 || hosts[0] != (host{"fan-001", "dhfan-001", "10.250.100.11"}) || hosts[99] != (host{"fan-100", "dhfan-100", "10.250.100.110"}) {
		t.Errorf("hosts %v ... %v", hosts[0], hosts[99])
	}
	for _, c := range []struct {
		change func(*config)
		want   string
	}{
		{func(c *config) { c.hosts = 201 }, "--hosts 201"},
		{func(c *config) { c.subnet = "192.168.1" }, "--subnet"},
		{func(c *config) { c.subnet = "10.250.300" }, "--subnet"},
		{func(c *config) { c.runs = 0 }, "--runs"},
		{func(c *config) { c.nsPrefix = "a-very-long-prefix" }, "15 characters"},
	} {
		c2 := good
		c.change(&c2)
		if err := c2.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c2, err, c.want)
		}
	}
}

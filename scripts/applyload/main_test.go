package main

import (
	"strings"
	"testing"
)

func TestUpgradeIdealTasks(t *testing.T) {
	for _, c := range []struct {
		nodes                   int
		max                     string
		tasks, batches, batchSz int
	}{
		{500, "10%", 75, 11, 49}, // 499 workers, 49 a batch
		{500, "1", 3 + 6*500, 499, 1},
		{500, "100%", 15, 1, 499},
		{1, "10%", 9, 0, 1}, // the control plane alone
		{11, "5%", 3 + 6*11, 10, 1},
	} {
		tasks, batches, batch, err := upgradeIdealTasks(c.nodes, c.max)
		if err != nil || tasks != c.tasks || batches != c.batches || batch != c.batchSz {
			t.Errorf("upgradeIdealTasks(%d, %q) = %d, %d, %d, %v; want %d, %d, %d", c.nodes, c.max, tasks, batches, batch, err, c.tasks, c.batches, c.batchSz)
		}
	}
	for _, bad := range []string{"0", "0%", "150%", "x"} {
		if _, _, _, err := upgradeIdealTasks(10, bad); err == nil {
			t.Errorf("upgradeIdealTasks(10, %q): no error", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{1.5}, 1.5},
		{[]float64{1.52, 1.30, 1.24}, 1.30}, // unsorted
		{[]float64{1.1, 1.4, 1.2, 1.3}, 1.25},
		{[]float64{2, 2, 9}, 2}, // one slow run does not move it
	} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v; want %v", c.xs, got, c.want)
		}
	}
}

func TestValidateRuns(t *testing.T) {
	c := DefaultConfig()
	for _, runs := range []int{0, -1, 21} {
		c.Runs = runs
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--runs") {
			t.Errorf("Runs %d: %v; want an error naming --runs", runs, err)
		}
	}
	c.Runs, c.JoinInto = 3, []int{1000, 3}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--runs") {
		t.Errorf("Runs 3 with --join-into: %v; want an error naming --runs", err)
	}
	c.Runs, c.JoinInto = 3, nil
	if err := c.Validate(); err != nil {
		t.Errorf("Runs 3: %v", err)
	}
}

package main

import "testing"

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

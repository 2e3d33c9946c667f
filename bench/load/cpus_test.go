package main

import (
	"slices"
	"testing"
)

func TestCPULines(t *testing.T) {
	for _, c := range []struct {
		list string
		want []string
	}{
		{"1", []string{"cpu1"}},
		{"0,1", []string{"cpu0", "cpu1"}},
		{"0-2,5", []string{"cpu0", "cpu1", "cpu2", "cpu5"}},
		{"1,0,1", []string{"cpu0", "cpu1"}},
	} {
		got, err := cpuLines(c.list)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("cpuLines(%q) = %v, %v; want %v", c.list, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a", "1,", "2-1", "-1", "1-x"} {
		if got, err := cpuLines(bad); err == nil {
			t.Errorf("cpuLines(%q) = %v, want an error", bad, got)
		}
	}
}

// TestReadCPUsSumsLists: a list's counters are the sum of its CPUs' (a
// CPU named twice, or a list asked for twice, counted once), and the
// machine's line is at least that.
func TestReadCPUsSumsLists(t *testing.T) {
	m, err := readCPUs("cpu", "0", "0,0", "0")
	if err != nil {
		t.Fatal(err)
	}
	one, all := m["0"], m["cpu"]
	if one.total <= 0 || all.total < one.total {
		t.Fatalf("cpu0 %+v, machine %+v", one, all)
	}
	if twice := m["0,0"]; twice.total != one.total {
		t.Errorf("a CPU listed twice counts once: %+v against %+v", twice, one)
	}
}

package ingest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/arina-dev/arina/ingest"
)

// TestDrain: values pushed by several goroutines reach the one taker, each exactly
// once and in each pusher's order; a Push wakes the taker, which reuses its batches.
func TestDrain(t *testing.T) {
	const pushers, each = 4, 5000
	d := ingest.NewDrain[[2]int]()
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				d.Push([2]int{p, i})
			}
		})
	}
	next := make([]int, pushers) // the next value expected of each pusher
	var batch [][2]int
	deadline := time.After(10 * time.Second)
	for got := 0; got < pushers*each; {
		select {
		case <-d.Wake():
		case <-deadline:
			t.Fatalf("took %d of %d values; no wake-up for the rest", got, pushers*each)
		}
		batch = d.Take(batch)
		for i, v := range batch {
			if v[1] != next[v[0]] {
				t.Fatalf("pusher %d: got value %d, want %d", v[0], v[1], next[v[0]])
			}
			next[v[0]]++
			got++
			batch[i] = [2]int{}
		}
	}
	wg.Wait()
	if n := d.Len(); n != 0 {
		t.Errorf("Len() = %d after taking everything", n)
	}
	select {
	case <-d.Wake(): // the last Push may have left one wake-up; nothing is left behind it
		if b := d.Take(batch); len(b) != 0 {
			t.Errorf("a wake-up with %d values after everything was taken", len(b))
		}
	default:
	}
	d.Push([2]int{9, 9})
	select {
	case <-d.Wake():
	default:
		t.Fatal("Push did not wake the taker")
	}
	if b := d.Take(nil); len(b) != 1 || b[0] != [2]int{9, 9} || d.Len() != 0 {
		t.Errorf("Take = %v, Len %d; want [[9 9]], 0", b, d.Len())
	}
}

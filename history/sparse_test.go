package history_test

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"pgregory.net/rapid"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/store"
)

// tb is what both *testing.T and *rapid.T have.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// pair is a History and the dense model fed the same changes on the same clock.
type pair struct {
	t        tb
	h        *history.History
	d        *dense
	clk      *clock
	contents []string
}

func newPair(t tb, opts history.Options, contents []string) *pair {
	clk := &clock{t: t0}
	opts.Now = clk.Now
	return &pair{t: t, h: history.New(opts), d: newDense(opts), clk: clk, contents: contents}
}

func (p *pair) apply(changes []store.Change) {
	p.h.Apply(changes)
	p.d.Apply(changes)
}

// check compares every answer of the History with the model's.
func (p *pair) check(what string) {
	p.t.Helper()
	for _, id := range p.contents {
		if got, want := p.h.Content(id), p.d.Content(id); !reflect.DeepEqual(got, want) {
			p.t.Fatalf("%s: Content(%q):\n got %+v\nwant %+v", what, id, got, want)
		}
	}
	if got, want := p.h.Activity(), p.d.Activity(); !reflect.DeepEqual(got, want) {
		p.t.Fatalf("%s: Activity:\n got %+v\nwant %+v", what, got, want)
	}
	if got := testutil.ToFloat64(p.h.Collectors()[0]); got != float64(p.d.size) {
		p.t.Fatalf("%s: arina_history_sets = %v, the model has %d", what, got, p.d.size)
	}
	if got := testutil.ToFloat64(p.h.Collectors()[1]); got != float64(p.d.dropped) {
		p.t.Fatalf("%s: arina_history_dropped_total = %v, the model dropped %d", what, got, p.d.dropped)
	}
}

// TestHistory_MatchesDense: on random changes, clock moves (within a step, across
// steps, past the window, now and then back) and sweeps, with small windows and caps,
// History answers Content, Activity and its metrics exactly as the dense ring did.
func TestHistory_MatchesDense(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		res := rapid.SampledFrom([]time.Duration{100 * time.Millisecond, time.Second, 10 * time.Second}).Draw(rt, "res")
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		opts := history.Options{Resolution: res, Window: time.Duration(steps) * res,
			MaxSets: rapid.IntRange(1, 12).Draw(rt, "maxSets")}
		contents := []string{"a", "b", "c", "d", "e"}
		p := newPair(rt, opts, contents)
		reactions := []string{"fire", "yum", "wow"}
		counts := map[string]int64{}
		for i := range rapid.IntRange(1, 120).Draw(rt, "ops") {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1, 2, 3, 4:
				batch := make([]store.Change, rapid.IntRange(1, 6).Draw(rt, "batch"))
				for k := range batch {
					c := rapid.SampledFrom(contents).Draw(rt, "content")
					r := rapid.SampledFrom(reactions).Draw(rt, "reaction")
					key := c + "/" + r
					n := counts[key]
					act := store.Add
					switch rapid.IntRange(0, 9).Draw(rt, "count") {
					case 0: // anything, past uint32 too
						n = rapid.Int64Range(0, 1<<40).Draw(rt, "n")
					case 1: // about the uint32 clamp
						n = math.MaxUint32 + rapid.Int64Range(-2, 2).Draw(rt, "n")
					case 2, 3, 4:
						act, n = store.Remove, max(n-1, 0)
					default:
						n++
					}
					counts[key] = n
					batch[k] = store.Change{ContentID: c, ReactionType: r, UserID: "u", Action: act, Count: n}
				}
				p.apply(batch)
			case 5, 6:
				var d time.Duration
				switch rapid.IntRange(0, 5).Draw(rt, "move") {
				case 0: // within a step, or onto the next
					d = time.Duration(rapid.Int64Range(0, int64(res)).Draw(rt, "d"))
				case 1, 2: // a few steps
					d = time.Duration(rapid.IntRange(1, steps+2).Draw(rt, "k")) * res
				case 3: // past the window
					d = time.Duration(rapid.IntRange(steps+1, 4*steps+3).Draw(rt, "k")) * res
				case 4: // back
					d = -time.Duration(rapid.Int64Range(1, int64(steps+2)*int64(res)).Draw(rt, "d"))
				case 5: // to a step's last ms
					d = res - time.Duration(p.clk.Now().UnixMilli()%res.Milliseconds())*time.Millisecond - time.Millisecond
				}
				p.clk.Add(d)
			case 7:
				p.h.Sweep()
				p.d.Sweep()
			}
			p.check(fmt.Sprint("op ", i))
		}
	})
}

func series(p *pair, id string) history.Series {
	p.t.Helper()
	got := p.h.Content(id)
	if len(got) != 1 {
		p.t.Fatalf("Content(%q) = %+v, want one reaction", id, got)
	}
	return got[0]
}

// TestHistory_RollOver: a set changing in every step keeps exactly the window's steps
// as the window slides over them, its start count the count at the end of the step
// before the window.
func TestHistory_RollOver(t *testing.T) {
	p := newPair(t, history.Options{Resolution: 10 * time.Second, Window: time.Minute}, []string{"A"}) // 6 steps
	for k := range int64(20) {
		p.apply([]store.Change{add("A", "fire", k+1)})
		p.check(fmt.Sprint("step ", k))
		s := series(p, "A")
		want := min(k+1, 6)
		if int64(len(s.Samples)) != want || s.Count != k+1 || s.StartCount != k+1-want {
			t.Fatalf("step %d: %+v, want %d samples, count %d from %d", k, s, want, k+1, k+1-want)
		}
		if s.Samples[0].At != ms(time.Duration(k+1-want)*10*time.Second) {
			t.Fatalf("step %d: oldest sample at %d, want the window's first step", k, s.Samples[0].At)
		}
		p.clk.Add(10 * time.Second)
	}
	// The window slides on with no change: the oldest steps leave one by one.
	for k := range 5 {
		s := series(p, "A")
		if len(s.Samples) != 5-k || s.StartCount != int64(15+k) {
			t.Fatalf("%d steps after the last change: %+v", k+1, s)
		}
		p.check(fmt.Sprint("idle step ", k))
		p.clk.Add(10 * time.Second)
	}
	if got := p.h.Content("A"); len(got) != 0 {
		t.Fatalf("a window after the last change: %+v", got)
	}
	p.check("idle")
}

// TestHistory_IdleLongerThanWindow: a busy set that goes quiet for longer than the
// window and then changes again (before a sweep drops it) shows only the new change,
// from the count it had when it went quiet.
func TestHistory_IdleLongerThanWindow(t *testing.T) {
	for _, idle := range []time.Duration{time.Minute, time.Minute + 10*time.Second, 7 * time.Minute} {
		p := newPair(t, history.Options{Resolution: 10 * time.Second, Window: time.Minute}, []string{"A"})
		for k := range int64(8) {
			p.apply([]store.Change{add("A", "fire", k+1)})
			p.clk.Add(10 * time.Second)
		}
		p.clk.Add(idle - 10*time.Second) // no Sweep: the set is still tracked
		p.apply([]store.Change{remove("A", "fire", 7)})
		p.check(fmt.Sprint("after ", idle))
		if s := series(p, "A"); len(s.Samples) != 1 || s.StartCount != 8 || s.Count != 7 {
			t.Fatalf("after %v idle: %+v, want one sample, 8 → 7", idle, s)
		}
	}
}

// TestHistory_ClampCounts: counts above 4294967295 are shown as that, however far and
// in whichever direction they move (the packed differences span the whole uint32).
func TestHistory_ClampCounts(t *testing.T) {
	p := newPair(t, history.Options{Resolution: 10 * time.Second, Window: time.Minute}, []string{"A"})
	for k, n := range []int64{1 << 40, 0, math.MaxUint32, math.MaxUint32 + 1, 5, 1 << 33, 3, math.MaxUint32 - 1} {
		p.apply([]store.Change{add("A", "fire", n)})
		p.check(fmt.Sprint("count ", n))
		if s := series(p, "A"); s.Count != min(n, math.MaxUint32) {
			t.Fatalf("change %d: count %d shown as %d", k, n, s.Count)
		}
		p.clk.Add(10 * time.Second)
	}
	s := series(p, "A")
	want := []int64{math.MaxUint32, 5, math.MaxUint32, 3, math.MaxUint32 - 1}
	for i, smp := range s.Samples {
		if smp.Count != want[i] {
			t.Fatalf("samples %+v, want counts %v", s.Samples, want)
		}
	}
	if s.StartCount != math.MaxUint32 {
		t.Fatalf("start count %d, want %d", s.StartCount, uint32(math.MaxUint32))
	}
}

// TestHistory_StepBoundaries: a change in a step's last ms and one in the next
// step's first ms are two steps; two in one step are one sample with the later count.
func TestHistory_StepBoundaries(t *testing.T) {
	p := newPair(t, history.Options{Resolution: 10 * time.Second, Window: time.Minute}, []string{"A"})
	p.apply([]store.Change{add("A", "fire", 1)}) // t0: step 0's first ms
	p.clk.Add(10*time.Second - time.Millisecond)
	p.apply([]store.Change{add("A", "fire", 2)}) // step 0's last ms
	p.check("end of step 0")
	p.clk.Add(time.Millisecond)
	p.apply([]store.Change{add("A", "fire", 3)}) // step 1's first ms
	p.check("start of step 1")
	want := []history.Sample{{At: ms(0), Count: 2}, {At: ms(10 * time.Second), Count: 3}}
	if s := series(p, "A"); !reflect.DeepEqual(s.Samples, want) || s.StartCount != 0 {
		t.Fatalf("%+v, want samples %+v from 0", s, want)
	}
	// Step 0 leaves the window at the first ms of step 6, not before.
	p.clk.Add(50*time.Second - time.Millisecond)
	if s := series(p, "A"); len(s.Samples) != 2 {
		t.Fatalf("at step 5's last ms: %+v", s)
	}
	p.check("end of step 5")
	p.clk.Add(time.Millisecond)
	if s := series(p, "A"); len(s.Samples) != 1 || s.StartCount != 2 {
		t.Fatalf("at step 6's first ms: %+v", s)
	}
	p.check("start of step 6")
}

// TestHistory_LargestWindow: a set changing in every one of MaxSteps steps by the
// largest amounts (the costliest entries: 7 bytes each) matches the model.
func TestHistory_LargestWindow(t *testing.T) {
	p := newPair(t, history.Options{Resolution: 100 * time.Millisecond, Window: history.MaxSteps * 100 * time.Millisecond}, []string{"A"})
	for k := range 2*history.MaxSteps + 10 {
		n := int64(0)
		if k%2 == 1 {
			n = math.MaxUint32
		}
		p.apply([]store.Change{add("A", "fire", n)})
		p.clk.Add(100 * time.Millisecond)
	}
	p.check("after two windows")
	if s := series(p, "A"); len(s.Samples) != history.MaxSteps-1 {
		t.Fatalf("%d samples, want %d", len(s.Samples), history.MaxSteps-1)
	}
}

// TestHistory_BusyThenQuiet: a set that changed in every step by large amounts and
// then only now and then gives the room back, and answers as the model throughout.
func TestHistory_BusyThenQuiet(t *testing.T) {
	p := newPair(t, history.Options{}, []string{"A"}) // 10s over 15m: 90 steps
	for k := range 90 {
		p.apply([]store.Change{add("A", "fire", int64(k%2)<<31)})
		p.check(fmt.Sprint("busy step ", k))
		p.clk.Add(10 * time.Second)
	}
	busy := p.h.PackedCap("A", "fire")
	for k := range 200 {
		if k%30 == 0 {
			p.apply([]store.Change{add("A", "fire", int64(k))})
		}
		p.check(fmt.Sprint("quiet step ", k))
		p.clk.Add(10 * time.Second)
	}
	if quiet := p.h.PackedCap("A", "fire"); quiet*4 > busy || busy < 400 {
		t.Fatalf("packed capacity %d B when busy, %d B when quiet", busy, quiet)
	}
	// Busy again, then changing less often than once a window (no sweep between).
	for k := range 90 {
		p.apply([]store.Change{add("A", "fire", int64(k%2)<<31)})
		p.clk.Add(10 * time.Second)
	}
	for k := range 3 {
		p.clk.Add(time.Duration(91+k) * 10 * time.Second)
		p.apply([]store.Change{add("A", "fire", int64(k))})
		p.check(fmt.Sprint("rare change ", k))
	}
	if rare := p.h.PackedCap("A", "fire"); rare*4 > busy {
		t.Fatalf("packed capacity %d B when busy, %d B when changing once in more than a window", busy, rare)
	}
}

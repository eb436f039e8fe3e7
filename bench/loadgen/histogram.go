package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear, in the spirit of HdrHistogram: values below 256 ns each
// have their own bucket; above, every power of two is split into 128 equal buckets, so a
// recorded value is known to within 1/128 (0.8%) of itself. Values are nanoseconds up to
// 2^41 ns (about 36 minutes); larger ones are counted in the last bucket.
const (
	histSubBits  = 7
	histSub      = 1 << histSubBits // buckets per power of two
	histMaxBits  = 41
	histMaxValue = 1<<histMaxBits - 1
	histBuckets  = (histMaxBits-histSubBits)*histSub + histSub
)

// histogram counts durations. Record is safe for concurrent use and does not allocate;
// the readers (quantile, count, ...) may run concurrently with it and then see some
// recent values or not.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	min    atomic.Int64  // nanoseconds; math.MaxInt64 while empty
	max    atomic.Int64  // nanoseconds
}

func newHistogram() *histogram {
	h := &histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

// histIndex returns the bucket of v (0 <= v <= histMaxValue).
func histIndex(v uint64) int {
	shift := bits.Len64(v) - (histSubBits + 1)
	if shift < 0 {
		shift = 0
	}
	return shift*histSub + int(v>>uint(shift))
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	shift := 0
	if i >= 2*histSub {
		shift = i/histSub - 1
	}
	lower := uint64(i-shift*histSub) << uint(shift)
	return lower + 1<<uint(shift) - 1
}

// record adds one duration; negative durations count as 0.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	u := min(uint64(v), histMaxValue)
	h.counts[histIndex(u)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// merge adds every value of o to h.
func (h *histogram) merge(o *histogram) {
	if o.n.Load() == 0 {
		return
	}
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.min.Load(); m < h.min.Load() {
		h.min.Store(m)
	}
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

func (h *histogram) count() int64 { return int64(h.n.Load()) }

// quantile returns the value at quantile q (0..1): the largest value of the bucket that
// holds the ceil(q*n)-th smallest value, clamped to the exact minimum and maximum. So it
// is never below the true quantile and at most 0.8% above it (values beyond the last
// bucket excepted). Quantiles 0 and 1 are the exact minimum and maximum; an empty
// histogram gives 0.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	switch {
	case n == 0:
		return 0
	case q <= 0:
		return time.Duration(h.min.Load())
	case q >= 1:
		return time.Duration(h.max.Load())
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	rank = min(rank, n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := int64(histUpper(i))
			v = min(v, h.max.Load())
			v = max(v, h.min.Load())
			return time.Duration(v)
		}
	}
	return time.Duration(h.max.Load())
}

// latency summarises h in milliseconds; nil when h is empty.
func (h *histogram) latency() *Latency {
	n := h.n.Load()
	if n == 0 {
		return nil
	}
	return &Latency{
		Count:  int64(n),
		MinMS:  ms(time.Duration(h.min.Load())),
		MeanMS: ms(time.Duration(h.sum.Load() / n)),
		P50MS:  ms(h.quantile(0.50)),
		P99MS:  ms(h.quantile(0.99)),
		P999MS: ms(h.quantile(0.999)),
		MaxMS:  ms(time.Duration(h.max.Load())),
	}
}

// ms converts d to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}

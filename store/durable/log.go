package durable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// The log. A writer batch costs the engine one key, not one per event: Apply builds
// the keys the batch writes ("m", "r", "t": see the key layout in durable.go) into an
// engine batch as before, but commits, in sync mode with fsync, one key instead:
//
//	"l" seq (8 bytes, big-endian) -> that batch's representation (pebble.Batch.Repr)
//
// one memtable insert per writer batch (the per-key inserts were a fifth of the CPU of
// a paced gateway, docs/PERFORMANCE.md). The background goroutine folds the log once
// it holds about half a memtable (and Close and Open fold what is left): it
// reads the entries in sequence order, puts their writes into one engine batch (the
// last write of each key), adds a deletion of each entry it read and commits that
// batch. Being
// that large, the engine does not insert it into a memtable key by key but queues it
// as it is (a "flushable batch") and writes it out sorted at the next flush. The
// commit is atomic: a crash leaves either the entries or the keys they write, never
// both or neither, and whatever log a crash leaves is folded when the store opens,
// before it is read. Entries are folded in order and the keys of one entry were
// applied to memory in that order, so the keys end as the memory index was.
//
// Everything written after the store opens goes through the log (PurgeTombstones
// too): a write straight to the keys could be overwritten by a fold of an older entry
// (a purged tombstone brought back).
var prefixLog = byte('l')

// skiplistNodeBytes is what a key costs in a Pebble memtable beyond its key (+8
// bytes of trailer) and value: arenaskl's node with its tower (an estimate, rounded up).
const skiplistNodeBytes = 200

// logEntryBytes estimates the memtable space of a log entry.
func logEntryBytes(key, value int) int64 { return int64(skiplistNodeBytes + key + 8 + value) }

// foldThreshold is when the log is folded: once its entries take half of a memtable
// (Pebble's default 4 MiB when not configured). A fold batch of at least that size
// is one Pebble queues whole instead of inserting its keys into the memtable (its
// threshold is half a memtable; the batch's keys cost more than the entries holding
// them). Folding sooner would make smaller and more level-0 tables.
func foldThreshold(memTableSize int64) int64 {
	if memTableSize <= 0 {
		memTableSize = 4 << 20
	}
	return memTableSize / 2
}

func appendLogKey(buf []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(buf[:0], prefixLog), seq)
}

// commitLog commits b, the keys of one batch of writes, as the next log entry, with
// fsync in sync mode, and asks the background goroutine for a fold once the log is
// large enough. Only the writer (Apply, PurgeTombstones) calls it.
func (d *Store) commitLog(b *pebble.Batch) error {
	lb := d.logBatch
	lb.Reset()
	d.logKey = appendLogKey(d.logKey, d.logSeq)
	repr := b.Repr()
	_ = lb.Set(d.logKey, repr, nil)
	wo := pebble.NoSync
	if d.opts.Sync {
		wo = pebble.Sync
	}
	if err := lb.Commit(wo); err != nil {
		return err
	}
	d.logSeq++
	if d.logBytes.Add(logEntryBytes(len(d.logKey), len(repr))) >= d.foldAt {
		select {
		case d.foldC <- struct{}{}:
		default:
		}
	}
	return nil
}

// fold folds the oldest log entries, about limit bytes of them (logEntryBytes) and at
// least one, in one atomic commit. It returns how many entries it folded, the sequence
// number of the last one and whether it left some. It is not safe for concurrent use
// (Open, then the background goroutine, then Close call it).
//
// The engine sorts a large batch by key before queueing it (a comparison sort: in a
// first version that sort was 38% of the CPU of BenchmarkDurable_Apply); fold gives it
// the keys sorted already, keeping only the last write of each key, which the
// engine's sort then only checks.
func (d *Store) fold(limit int64) (entries int, last uint64, more bool, err error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return 0, 0, false, err
	}
	f := &d.folder
	f.buf, f.ends, f.ops, f.seqs = f.buf[:0], f.ends[:0], f.ops[:0], f.seqs[:0]
	var (
		first uint64
		est   int64
	)
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 9 {
			_ = it.Close()
			return 0, 0, false, fmt.Errorf("%w: malformed log key %q", ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k[1:])
		if entries == 0 {
			first = seq
		}
		last = seq
		f.seqs = append(f.seqs, seq)
		entries++
		est += logEntryBytes(len(k), len(v))
		f.buf = append(f.buf, v...) // the iterator's values do not last
		f.ends = append(f.ends, len(f.buf))
		if est >= limit {
			more = it.Next()
			break
		}
	}
	if err := it.Close(); err != nil {
		return 0, 0, false, err
	}
	if entries == 0 {
		return 0, 0, false, nil
	}
	start := 0
	for i, end := range f.ends {
		if err := f.read(f.buf[start:end]); err != nil {
			return 0, 0, false, fmt.Errorf("%w: log entry %d: %v", ErrCorrupt, first+uint64(i), err)
		}
		start = end
	}
	sortFoldOps(f.ops, 0)
	big := d.db.NewBatch()
	defer big.Close()
	for i := range f.ops {
		op := &f.ops[i]
		if i+1 < len(f.ops) && bytes.Equal(op.key, f.ops[i+1].key) {
			continue // a later write of the key follows
		}
		if op.kind == pebble.InternalKeyKindDelete {
			_ = big.Delete(op.key, nil)
		} else {
			_ = big.Set(op.key, op.value, nil)
		}
	}
	// A point deletion per entry, not a range deletion: every table the range
	// deletion went into made each step of the recovery's iterator look at it (a
	// fifth of the recovery of 1M memberships), while point deletions of "l" keys are
	// never seen by an iterator over the others.
	for _, seq := range f.seqs {
		_ = big.Delete(appendLogKey(f.key[:0], seq), nil)
	}
	if d.foldHook != nil {
		d.foldHook("commit")
	}
	// No fsync: until the fold is on disk the entries are, and an fsync of a later
	// entry syncs the fold with it.
	if err := big.Commit(pebble.NoSync); err != nil {
		return 0, 0, false, err
	}
	if d.foldHook != nil {
		d.foldHook("committed")
	}
	d.logBytes.Add(-est)
	return entries, last, more, nil
}

// foldIdleRelease is how many seconds without a fold the background goroutine waits
// before it lets the folder's buffers go (folder.release).
const foldIdleRelease = 2

// release drops the buffers: under ingest a fold comes about every second and reuses
// them, but once ingest stops they are several MB held for nothing (6.5 MB after
// loading 3M memberships, 2 B a membership; issue 16). The next fold makes them anew.
func (f *folder) release() { *f = folder{key: f.key} }

// folder holds a fold's buffers, kept for the next one.
type folder struct {
	buf  []byte   // the entries' values (batch representations), one after the other
	ends []int    // where each entry's ends in buf
	ops  []foldOp // the writes of the entries, in order, then sorted
	seqs []uint64 // the entries' sequence numbers
	key  []byte
}

// foldOp is one write of a log entry.
type foldOp struct {
	key, value []byte // in folder.buf
	seq        int    // position among the fold's writes: of two writes of a key, the later wins
	kind       pebble.InternalKeyKind
}

// read appends the writes of one entry (a batch representation) to f.ops.
func (f *folder) read(repr []byte) error {
	h, ok := batchrepr.ReadHeader(repr)
	if !ok {
		return errors.New("short batch header")
	}
	n := uint32(0)
	for r := batchrepr.Read(repr); len(r) > 0; n++ {
		kind, key, value, ok, err := r.Next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if kind != pebble.InternalKeyKindSet && kind != pebble.InternalKeyKindDelete {
			return fmt.Errorf("unexpected write of kind %v", kind)
		}
		f.ops = append(f.ops, foldOp{key: key, value: value, seq: len(f.ops), kind: kind})
	}
	if n != h.Count {
		return fmt.Errorf("%d writes, the header says %d", n, h.Count)
	}
	return nil
}

// sortFoldOps sorts ops by key from byte depth on (the keys agree before it), and
// writes of one key by seq: a three-way radix quicksort (Bentley and Sedgewick), which
// looks at each byte of the keys' long shared prefixes ("m" content 0x00 reaction
// 0x00) about once instead of comparing them whole again and again.
func sortFoldOps(ops []foldOp, depth int) {
	for len(ops) > 1 {
		if len(ops) <= 12 {
			insertionSortFoldOps(ops, depth)
			return
		}
		// Median of three bytes as the pivot; -1 stands for the end of a key.
		a, b, c := byteAt(&ops[0], depth), byteAt(&ops[len(ops)/2], depth), byteAt(&ops[len(ops)-1], depth)
		pivot := max(min(a, b), min(max(a, b), c))
		// ops[:lt] < pivot, ops[lt:i] == pivot, ops[gt:] > pivot
		lt, i, gt := 0, 0, len(ops)
		for i < gt {
			switch x := byteAt(&ops[i], depth); {
			case x < pivot:
				ops[lt], ops[i] = ops[i], ops[lt]
				lt++
				i++
			case x > pivot:
				gt--
				ops[i], ops[gt] = ops[gt], ops[i]
			default:
				i++
			}
		}
		sortFoldOps(ops[:lt], depth)
		if pivot < 0 { // the same key: the writes in order
			slices.SortFunc(ops[lt:gt], func(x, y foldOp) int { return x.seq - y.seq })
		} else {
			sortFoldOps(ops[lt:gt], depth+1)
		}
		ops = ops[gt:]
	}
}

func byteAt(op *foldOp, depth int) int {
	if depth < len(op.key) {
		return int(op.key[depth])
	}
	return -1
}

func insertionSortFoldOps(ops []foldOp, depth int) {
	for i := 1; i < len(ops); i++ {
		for j := i; j > 0 && lessFoldOp(&ops[j], &ops[j-1], depth); j-- {
			ops[j], ops[j-1] = ops[j-1], ops[j]
		}
	}
}

func lessFoldOp(x, y *foldOp, depth int) bool {
	if c := bytes.Compare(x.key[depth:], y.key[depth:]); c != 0 {
		return c < 0
	}
	return x.seq < y.seq
}

// foldAll folds the whole log, in commits of up to four thresholds each. It returns
// how many entries it folded and the sequence number after the last one (0 if none).
func (d *Store) foldAll() (entries int, next uint64, err error) {
	for {
		n, last, more, err := d.fold(4 * d.foldAt)
		if n > 0 {
			entries, next = entries+n, last+1
		}
		if err != nil || !more {
			return entries, next, err
		}
	}
}

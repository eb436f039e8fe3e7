package durable

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/arina-dev/arina/store"
)

// FormatVersion is the version of the on-disk layout written by this build. A data
// directory recording another version is refused at start, except format 1, which is
// format 2 without log entries: its format record is rewritten at open and nothing
// else changes. (A build of format 1 would ignore the log: it refuses format 2.)
const FormatVersion = 2

// Key layout in the engine (identifiers never contain control characters, so 0x00 is a
// safe separator):
//
//	"\x00format"              -> "arina-store/<FormatVersion>"
//	"r" content 0x00 reaction -> ""   (the reaction was held once; it stays listed at 0)
//	"m" content 0x00 reaction 0x00 user -> "", or 8 bytes: expiry, or 16 bytes: expiry
//	                                       and remembered TS (see Op.TS)
//	"t" content 0x00 reaction 0x00 user -> 8 bytes: remembered TS of a user not in the
//	                                       set (a tombstone; the set may not exist)
//	"l" seq                             -> a batch of the keys above, not yet folded
//	                                       into them (format 2; durable_log.go)
//
// Numbers are big-endian int64 unix ms; an expiry of 0 is none. A membership without a
// remembered TS keeps the shorter values of the first release of format 1, which this
// build reads as they are: there is no migration. (That first release refuses a member
// value of 16 bytes as corrupt, and ignores "t" keys.)
var (
	formatKey      = []byte("\x00format")
	prefixReaction = byte('r')
	prefixMember   = byte('m')
	prefixTomb     = byte('t')
)

func formatValue(v int) []byte { return fmt.Appendf(nil, "arina-store/%d", v) }

// Sentinel errors of the durable store.
var (
	// ErrLocked is returned when another process holds the data directory.
	ErrLocked = errors.New("data directory is in use by another process")
	// ErrCorrupt is returned when the data directory cannot be read back.
	ErrCorrupt = errors.New("data directory is corrupt")
	// ErrFormat is returned for a data directory written in an unknown format.
	ErrFormat = errors.New("data directory has an unknown format version")
)

// Options configure a Store.
type Options struct {
	Dir          string        // data directory; created if missing
	Sync         bool          // fsync every batch before Apply returns (else: every SyncInterval)
	SyncInterval time.Duration // async mode: most time between fsyncs; default 100ms
	MinFreeBytes uint64        // refuse batches while the disk has less free space; default 64 MiB
	Logger       *slog.Logger
	// MemTableSize and CacheSize size Pebble's memtable and block cache (bytes); 0:
	// Pebble's defaults (4 MiB, 8 MiB). The daemon derives them from memory.limit.
	MemTableSize, CacheSize int64

	fs        vfs.FS             // tests: the engine's file system; nil: the OS's
	foldHook  func(stage string) // tests: see Store.foldHook
	foldBytes int64              // tests: when to fold (logEntryBytes); 0: foldThreshold
}

// Store is a store.Store whose memory index is backed by a Pebble database in a data
// directory. Every Apply batch is one engine batch (group commit); in sync mode it is
// fsynced before Apply returns, so an acknowledged event survives a crash.
//
// Store is safe for concurrent use by one writer and many readers. Readers use the
// memory index and never wait for the disk: a batch becomes visible to them when it is
// applied to memory, just before it is committed (as with Redis, a read can see a write
// a moment before it is durable; an acknowledgement never comes before).
type Store struct {
	mem  *store.Memory
	db   *pebble.DB
	opts Options
	log  *slog.Logger

	batch *pebble.Batch
	key   []byte
	// The log (durable_log.go). logBatch, logKey and logSeq belong to the writer;
	// logBytes estimates the memtable space of the entries not yet folded.
	logBatch *pebble.Batch
	logKey   []byte
	logSeq   uint64
	logBytes atomic.Int64
	foldAt   int64
	foldC    chan struct{}
	foldHook func(stage string) // tests: called before and after a fold's commit
	folder   folder
	val      [16]byte
	applied  []store.Applied // per op of the current batch: for undo and for what to write
	healthy  atomic.Bool
	dirty    atomic.Bool // async: written since the last fsync
	lowDisk  atomic.Bool

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	metricsMu  sync.Mutex // Collect against Close
	dbClosed   bool       // guarded by metricsMu
	stalls     atomic.Int64
	stallStart atomic.Int64 // unix ns when the current write stall began
	stallNanos atomic.Int64 // total of the stalls that ended
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the data directory and rebuilds the memory index from
// it. It refuses a directory that another process holds, that is corrupt, or that was
// written in an unknown format.
func Open(opts Options) (*Store, error) {
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 100 * time.Millisecond
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: data directory %q: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: creating data directory %s: %w", dir, err)
	}
	start := time.Now()
	d := &Store{mem: store.NewMemory(), opts: opts, log: opts.Logger, stop: make(chan struct{}),
		foldAt: cmp.Or(opts.foldBytes, foldThreshold(opts.MemTableSize)), foldC: make(chan struct{}, 1), foldHook: opts.foldHook}
	db, err := pebble.Open(dir, &pebble.Options{
		FS:            opts.fs,
		CacheSize:     max(opts.CacheSize, 0),
		MemTableSize:  uint64(max(opts.MemTableSize, 0)),
		Logger:        pebbleLogger{opts.Logger},
		EventListener: d.events(),
		// Arina reads the engine only when it opens it (load): queries are answered
		// from memory. The read amplification of many L0 files then costs only that
		// read, so L0 is let grow to 16 sublevels before it is compacted (Pebble's
		// default: 4), which compacts more data at a time and less often: -19% CPU
		// per QoS 1 sync event, +14% ingest (docs/PERFORMANCE.md). Writes stop at
		// 64 sublevels (default 12).
		L0CompactionThreshold: 16,
		L0StopWritesThreshold: 64,
	})
	if err != nil {
		switch {
		case isLockError(err):
			return nil, fmt.Errorf("store: opening %s: %w (is another arina running with this store.data_dir?): %v", dir, ErrLocked, err)
		case pebble.IsCorruptionError(err):
			return nil, fmt.Errorf("store: opening %s: %w: %v; restore it from a backup, or move it away to start empty", dir, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("store: opening %s: %w", dir, err)
	}
	d.db, d.batch, d.logBatch = db, db.NewBatch(), db.NewBatch()
	d.opts.Dir = dir
	if err := d.checkFormat(); err != nil {
		_ = db.Close()
		return nil, err
	}
	// What a crash left in the log goes into the keys before they are read.
	opened := time.Now()
	folded, next, err := d.foldAll()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: folding the log of %s: %w; restore it from a backup, or move it away to start empty", dir, err)
	}
	d.logSeq = next
	d.logBytes.Store(0)
	loadStart := time.Now()
	n, tombs, err := d.load()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: reading %s: %w: %v; restore it from a backup, or move it away to start empty", dir, ErrCorrupt, err)
	}
	d.healthy.Store(true)
	// took: the whole of Open; engine_open, log_fold and index_load its steps (the
	// engine's own replay of its WAL is in engine_open).
	d.log.Info("store recovered", "dir", dir, "memberships", n, "tombstones", tombs, "log_entries_folded", folded,
		"took", time.Since(start).Round(time.Millisecond), "engine_open", opened.Sub(start).Round(time.Millisecond),
		"log_fold", loadStart.Sub(opened).Round(time.Millisecond), "index_load", time.Since(loadStart).Round(time.Millisecond),
		"sync", opts.Sync)
	d.checkDisk()
	d.wg.Add(1)
	go d.background()
	return d, nil
}

func isLockError(err error) bool {
	// Another process: flock's EAGAIN; this process: pebble's own "lock held by" error.
	return errors.Is(err, syscallEAGAIN) || errors.Is(err, syscallEWOULDBLOCK) || strings.Contains(err.Error(), "lock held by")
}

func (d *Store) checkFormat() error {
	v, closer, err := d.db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		// A new directory, or one with data but no format record (never written by us).
		it, err := d.db.NewIter(nil)
		if err != nil {
			return fmt.Errorf("store: reading %s: %w", d.opts.Dir, err)
		}
		empty := !it.First()
		_ = it.Close()
		if !empty {
			return fmt.Errorf("store: %s: %w: no format record; this is not an arina data directory", d.opts.Dir, ErrFormat)
		}
		if err := d.db.Set(formatKey, formatValue(FormatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("store: writing format version to %s: %w", d.opts.Dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: reading format version of %s: %w", d.opts.Dir, err)
	}
	defer closer.Close()
	if bytes.Equal(v, formatValue(1)) {
		if err := d.db.Set(formatKey, formatValue(FormatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("store: writing format version to %s: %w", d.opts.Dir, err)
		}
		return nil
	}
	if !bytes.Equal(v, formatValue(FormatVersion)) {
		return fmt.Errorf("store: %s: %w %q (this build reads %q); run the arina version that wrote it, or move the directory away to start empty",
			d.opts.Dir, ErrFormat, v, formatValue(FormatVersion))
	}
	return nil
}

// load rebuilds the memory index from the engine and returns the memberships and
// tombstones read. It runs before the store is returned, with no reader.
func (d *Store) load() (members, tombs int, err error) {
	l := d.mem.Load()
	defer l.Done()
	if members, err = d.loadMembers(l); err != nil {
		return members, 0, err
	}
	// The memberships are in; the reactions and tombstones ("r" and "t" keys) follow.
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMember + 1}, UpperBound: []byte{prefixTomb + 1}})
	if err != nil {
		return members, 0, err
	}
	// Keys come sorted by prefix ("m" < "r" < "t": every set exists before its
	// tombstones are read), then by content, then reaction, as the loader wants them.
	fail := func(format string, args ...any) (int, int, error) {
		_ = it.Close()
		return members, tombs, fmt.Errorf(format, args...)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch k[0] {
		case prefixReaction:
			c, r, ok := bytes.Cut(k[1:], []byte{0})
			if !ok {
				return fail("malformed reaction key %q", k)
			}
			l.Set(string(c), string(r))
		case prefixTomb:
			c, rest, ok1 := bytes.Cut(k[1:], []byte{0})
			r, u, ok2 := bytes.Cut(rest, []byte{0})
			v := it.Value()
			if !ok1 || !ok2 || len(u) == 0 || len(v) != 8 {
				return fail("malformed tombstone %q -> %q", k, v)
			}
			ts := int64(binary.BigEndian.Uint64(v))
			if ts == 0 {
				return fail("malformed tombstone %q -> %q: no TS", k, v)
			}
			l.Tombstone(c, r, u, ts)
			tombs++
		}
	}
	if err := it.Close(); err != nil {
		return members, tombs, err
	}
	return members, tombs, nil
}

// loadMembers reads the memberships ("m" keys) into the memory index through l, in
// key order, a batch at a time (store.Loader.Members interns a batch's users together
// and puts them into their sets). One goroutine does both: a reader goroutine handing
// batches to a loader on the other core (the ninth session's design) started 10% slower
// on 2 quiet cores than the same process with GOMAXPROCS=1 (3.1–3.4 s against 2.9 s for
// 10M memberships), the hand-offs costing more than the overlap saved.
func (d *Store) loadMembers(l *store.Loader) (members int, err error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMember}, UpperBound: []byte{prefixMember + 1}})
	if err != nil {
		return 0, err
	}
	var set store.LoadSet
	b := new(loadBatch)
	err = readMembers(it, b, func() {
		for i := range b.count {
			if s := b.sets[i]; s != nil {
				set = l.Set(s[0], s[1])
			}
			b.rs[i] = set
		}
		b.load(l)
		members += b.count
		b.reset()
	})
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return members, err
}

// readMembers reads the membership keys of it into b, calling flush each time b is
// full and once at the end for what is left; it returns at the end of the keys or on a
// malformed one.
func readMembers(it *pebble.Iterator, b *loadBatch, flush func()) error {
	// The set's part of its keys ("m" content 0x00 reaction 0x00), while they come:
	// a key that starts with it is the next user of the set, found without cutting
	// the key up again; nil before the first.
	var setKey []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		var (
			set *[2]string
			u   []byte
		)
		if setKey != nil && len(k) > len(setKey) && bytes.HasPrefix(k, setKey) {
			u = k[len(setKey):]
		} else {
			c, rest, ok1 := bytes.Cut(k[1:], []byte{0})
			r, user, ok2 := bytes.Cut(rest, []byte{0})
			if !ok1 || !ok2 || len(user) == 0 {
				return fmt.Errorf("malformed membership key %q", k)
			}
			u = user
			setKey = append(setKey[:0], k[:len(k)-len(u)]...)
			set = &[2]string{string(c), string(r)}
		}
		var exp, ts int64
		switch v := it.Value(); len(v) {
		case 0:
		case 8:
			exp = int64(binary.BigEndian.Uint64(v))
		case 16:
			exp, ts = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
		default:
			return fmt.Errorf("malformed membership value %q for key %q", v, k)
		}
		if b.add(set, u, exp, ts) {
			flush()
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if b.count > 0 {
		flush()
	}
	return nil
}

// loadBatch is memberships read by readMembers, for loadMembers to put in the index.
type loadBatch struct {
	sets  [store.LoadBatchMax]*[2]string // content and reaction where they change from the previous membership, else nil
	rs    [store.LoadBatchMax]store.LoadSet
	exps  [store.LoadBatchMax]int64
	tss   [store.LoadBatchMax]int64
	ends  [store.LoadBatchMax]int // of each user id in buf
	ids   [store.LoadBatchMax][]byte
	buf   []byte // the user ids, one after the other (the iterator's keys do not last)
	count int
}

// add keeps one membership; it reports whether the batch is full.
func (b *loadBatch) add(set *[2]string, user []byte, exp, ts int64) bool {
	i := b.count
	b.sets[i], b.exps[i], b.tss[i] = set, exp, ts
	b.buf = append(b.buf, user...)
	b.ends[i] = len(b.buf)
	b.count++
	return b.count == store.LoadBatchMax
}

// load hands the batch's memberships to l.
func (b *loadBatch) load(l *store.Loader) {
	start := 0
	for i := range b.count {
		b.ids[i] = b.buf[start:b.ends[i]:b.ends[i]]
		start = b.ends[i]
	}
	l.Members(b.rs[:b.count], b.ids[:b.count], b.exps[:b.count], b.tss[:b.count])
}

// reset empties the batch for reuse.
func (b *loadBatch) reset() {
	for i := range b.count {
		b.sets[i], b.rs[i], b.ids[i] = nil, store.LoadSet{}, nil
	}
	b.buf, b.count = b.buf[:0], 0
}

func (d *Store) appendKey(prefix byte, op *store.Op) []byte {
	k := append(d.key[:0], prefix)
	k = append(k, op.ContentID...)
	k = append(k, 0)
	k = append(k, op.ReactionType...)
	if prefix != prefixReaction {
		k = append(k, 0)
		k = append(k, op.UserID...)
	}
	d.key = k
	return k
}

// Apply implements Store: the batch is applied to memory, written to the engine as one
// log entry (durable_log.go) and, in sync mode, fsynced. If the write fails, memory is rolled back and
// nothing of the batch is applied.
func (d *Store) Apply(_ context.Context, ops []store.Op, out []store.Result) error {
	if d.lowDisk.Load() {
		return fmt.Errorf("%w: less than %d bytes free in %s", store.ErrUnavailable, d.opts.MinFreeBytes, d.opts.Dir)
	}
	if cap(d.applied) < len(ops) {
		d.applied = make([]store.Applied, len(ops))
	}
	ap := d.applied[:len(ops)]
	if err := d.mem.ApplyTracked(ops, out, ap); err != nil {
		return err
	}
	b := d.batch
	b.Reset()
	// The engine batch is built from the ops and what they did, not from the index:
	// outside the lock, so that queries wait for the apply only.
	for i := range ops {
		d.write(b, &ops[i], &out[i], &ap[i])
	}
	if b.Empty() {
		return nil
	}
	if err := d.commitLog(b); err != nil {
		d.mem.Undo(ops, out, ap)
		d.healthy.Store(false)
		return fmt.Errorf("%w: committing to %s: %v", store.ErrUnavailable, d.opts.Dir, err)
	}
	if !d.opts.Sync {
		d.dirty.Store(true)
	}
	d.healthy.Store(true)
	return nil
}

// write adds to b what op did to memory.
func (d *Store) write(b *pebble.Batch, op *store.Op, res *store.Result, a *store.Applied) {
	if a.CreatedReaction() {
		_ = b.Set(d.appendKey(prefixReaction, op), nil, nil)
	}
	if res.Stale {
		return
	}
	was, is := a.WasMember(), a.IsMember()
	ts, prevTS := a.TS(), a.PrevTS()
	switch {
	case is && (!was || res.Expiry != res.PrevExpiry || ts != prevTS):
		_ = b.Set(d.appendKey(prefixMember, op), memberValue(d.val[:0], res.Expiry, ts), nil)
		if !was && prevTS != 0 { // the user's tombstone is now the member's TS
			_ = b.Delete(d.appendKey(prefixTomb, op), nil)
		}
	case was && !is:
		_ = b.Delete(d.appendKey(prefixMember, op), nil)
	}
	if !is && ts != 0 && (was || ts != prevTS) {
		_ = b.Set(d.appendKey(prefixTomb, op), binary.BigEndian.AppendUint64(d.val[:0], uint64(ts)), nil)
	}
}

// memberValue is the value of a membership key: nothing, the expiry, or the expiry
// and the remembered TS.
func memberValue(buf []byte, exp, ts int64) []byte {
	if ts != 0 {
		buf = binary.BigEndian.AppendUint64(buf, uint64(exp))
		return binary.BigEndian.AppendUint64(buf, uint64(ts))
	}
	if exp == 0 {
		return nil
	}
	return binary.BigEndian.AppendUint64(buf, uint64(exp))
}

// PurgeTombstones implements Store: the tombstones are deleted from the engine in one
// log entry, then from memory. On error nothing is forgotten.
func (d *Store) PurgeTombstones(_ context.Context, before int64) (int, error) {
	if d.lowDisk.Load() {
		return 0, fmt.Errorf("%w: less than %d bytes free in %s", store.ErrUnavailable, d.opts.MinFreeBytes, d.opts.Dir)
	}
	tombs, err := d.mem.ListTombstones(before)
	if err != nil || len(tombs) == 0 {
		return 0, err
	}
	b := d.db.NewBatch()
	defer b.Close()
	for i := range tombs {
		t := &tombs[i]
		op := store.Op{ContentID: t.ContentID, ReactionType: t.ReactionType, UserID: t.UserID}
		_ = b.Delete(d.appendKey(prefixTomb, &op), nil)
	}
	if err := d.commitLog(b); err != nil {
		return 0, fmt.Errorf("%w: deleting %d tombstones in %s: %v", store.ErrUnavailable, len(tombs), d.opts.Dir, err)
	}
	if !d.opts.Sync {
		d.dirty.Store(true)
	}
	return d.mem.ForgetTombstones(tombs)
}

// Compact re-lays the index's arrays (store.Memory.Compact); nothing on disk changes.
func (d *Store) Compact(ctx context.Context, room int64) (int, error) {
	return d.mem.Compact(ctx, room)
}

// Members implements Store.
func (d *Store) Members(ctx context.Context, contentID, reactionType, after string, limit int) ([]store.Member, error) {
	return d.mem.Members(ctx, contentID, reactionType, after, limit)
}

// Contents implements Store.
func (d *Store) Contents(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	return d.mem.Contents(ctx, prefix, after, limit)
}

// UserMemberships implements Store.
func (d *Store) UserMemberships(ctx context.Context, userID string) ([]store.Membership, error) {
	return d.mem.UserMemberships(ctx, userID)
}

// Expiring implements Store.
func (d *Store) Expiring(fn func(contentID, reactionType, userID string, expiresAt int64)) {
	d.mem.Expiring(fn)
}

// Counts implements Store.
func (d *Store) Counts(ctx context.Context, contentID string) ([]store.ReactionCount, error) {
	return d.mem.Counts(ctx, contentID)
}

// Healthy reports whether the store can persist: false while the disk is low on space
// or after a failed commit, until a commit succeeds again.
func (d *Store) Healthy() bool { return d.healthy.Load() && !d.lowDisk.Load() }

// background folds the log, fsyncs in async mode and watches the free disk space.
func (d *Store) background() {
	defer d.wg.Done()
	syncT := time.NewTicker(d.opts.SyncInterval)
	defer syncT.Stop()
	diskT := time.NewTicker(time.Second)
	defer diskT.Stop()
	idle := 0 // seconds (diskT's ticks) without a fold
	for {
		select {
		case <-d.stop:
			return
		case <-syncT.C:
			if !d.opts.Sync && d.dirty.Swap(false) {
				if err := d.db.LogData(nil, pebble.Sync); err != nil {
					d.dirty.Store(true)
					d.log.Error("store: periodic fsync failed", "dir", d.opts.Dir, "err", err)
				}
			}
		case <-diskT.C:
			d.checkDisk()
			if idle++; idle == foldIdleRelease {
				d.folder.release()
				if d.foldHook != nil {
					d.foldHook("released")
				}
			}
		case <-d.foldC:
			idle = 0
			// Fold what is there: the log may have grown meanwhile.
			for more := true; more && d.logBytes.Load() >= d.foldAt; {
				var err error
				if _, _, more, err = d.fold(4 * d.foldAt); err != nil {
					// Nothing is lost: the entries stay until a fold succeeds.
					d.log.Error("store: folding the log failed; retrying at the next batch", "dir", d.opts.Dir, "err", err)
					break
				}
			}
		}
	}
}

func (d *Store) checkDisk() {
	free, err := freeBytes(d.opts.Dir)
	if err != nil {
		return
	}
	low := free < d.opts.MinFreeBytes
	if d.lowDisk.Swap(low) != low {
		if low {
			d.log.Error("store: disk almost full: refusing writes until space is freed", "dir", d.opts.Dir, "free_bytes", free, "min_free_bytes", d.opts.MinFreeBytes)
		} else {
			d.log.Info("store: disk space recovered: accepting writes", "dir", d.opts.Dir, "free_bytes", free)
		}
	}
}

// Close fsyncs and closes the engine. It is safe to call more than once.
func (d *Store) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		d.wg.Wait()
		_ = d.mem.Close()
		var errs []error
		if _, _, err := d.foldAll(); err != nil {
			// Nothing is lost: the next open folds what is left.
			d.log.Warn("store: folding the log at close failed; the next start folds it", "dir", d.opts.Dir, "err", err)
		}
		if !d.opts.Sync {
			errs = append(errs, d.db.LogData(nil, pebble.Sync))
		}
		d.metricsMu.Lock()
		d.dbClosed = true
		errs = append(errs, d.batch.Close(), d.logBatch.Close(), d.db.Close())
		d.metricsMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			d.closeErr = fmt.Errorf("store: closing %s: %w", d.opts.Dir, err)
		}
	})
	return d.closeErr
}

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by the engine on errors it cannot continue from (a failed WAL
// write). Continuing could acknowledge events that are not stored, so the process
// stops; on restart the engine recovers what was committed.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic("store: fatal storage engine error: " + msg)
}

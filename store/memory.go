package store

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Memory is a Store that keeps every set in memory. User ids are interned to integers
// and each set holds them packed (2 bytes a member), in a bitset when dense or, once
// large, in a roaring bitmap (memberSet), so that a membership costs a few bytes
// (BenchmarkMemory_Footprint).
//
// Timestamped ops (Op.TS != 0) cost more only where they occur: a member's remembered
// TS sits beside its id (4 bytes) while its set is packed, and so does a tombstone,
// flagged, with its id (6 bytes); the set's other TS are in a table of the set
// (stampTable, about 8 bytes a user; setstamps.go); and a timestamped remove on a set
// never held keeps its tombstone aside (orphans), so the content stays unknown.
//
// Memory is safe for concurrent use. Apply takes a write lock for the whole batch and
// queries take a read lock, so that they see either none or all of a batch; except
// Counts, which does not wait for a batch. It takes only the lock that guards the
// index's shape (dir), which Apply holds just to add or drop a content or a (content,
// reaction), reads the count each set keeps, and reads them again should the content's
// change counter (content.seq) have moved meanwhile: a content's counts are always as
// they were between two ops, though that may be inside a batch.
type Memory struct {
	mu sync.RWMutex
	// dir guards, besides mu, what Counts reads: closed, the contents map and each
	// content's reactions and names. Whoever changes them holds both, so readers
	// holding either see them whole.
	dir      sync.RWMutex
	closed   bool
	contents map[string]*content
	users    interner // user ids <-> the numbers sets hold

	// orphans holds the remembered TS of timestamped removes on (content, reaction)
	// sets that do not exist (were never held). The set adopts them when it is
	// created. nil until the first such remove.
	orphans map[setKey]map[uint32]int64

	sinceCompact uint64 // ops applied since Compact last ran; under mu
	laidEntries  uint64 // the entries Compact re-laid when it last ran; under mu
}

type setKey struct{ content, reaction string }

type content struct {
	// seq is bumped after every change to the count of one of the content's sets, so
	// that Counts can tell whether the counts it read belong to one moment.
	seq       atomic.Uint32
	reactions []*reactionSet // sorted by reaction type
	// names[i] is the reaction type of reactions[i]: find scans these contiguous
	// strings instead of following a pointer to every set, which on a large index is a
	// cache miss each. Both slices are exactly as long as needed: a content gains a
	// reaction type rarely (their doubling was 70 B a content, issue 16).
	names []string
}

type reactionSet struct {
	// members holds the members and the remembered TS: the newest TS applied (Op.TS)
	// per user, for members and, as tombstones, for users no longer in the set. A
	// user without one has none (TS 0 is never stored). See setstamps.go.
	members memberSet
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{
		contents: make(map[string]*content),
	}
}

// Apply implements Store.
func (m *Memory) Apply(_ context.Context, ops []Op, out []Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.sinceCompact += uint64(len(ops))
	for i := range ops {
		if op := &ops[i]; op.Action == Add {
			m.add(op, &out[i])
		} else {
			m.remove(op, &out[i])
		}
	}
	return nil
}

// Applied says what an op did beyond its Result: Undo needs it to revert the op, and
// a durable engine (store/durable) to know what to write. See ApplyTracked.
type Applied struct {
	flags  applyFlags
	prevTS int64 // the user's remembered TS before the op; 0: none
	ts     int64 // the user's remembered TS after the op; 0: none
}

type applyFlags uint8

const (
	createdContent  applyFlags = 1 << iota // an add created the content
	createdReaction                        // an add created the (content, reaction) set
	adoptedOrphans                         // the created set took its stamps from m.orphans
	wasMember                              // the user was in the set before the op
	isMember                               // the user is in the set after the op
)

func (f applyFlags) has(g applyFlags) bool { return f&g != 0 }

// add applies an Add and writes its outcome to res; the caller holds the write lock.
// See Op.TS for the rules of timestamped ops.
func (m *Memory) add(op *Op, res *Result) Applied {
	var a Applied
	c := m.contents[op.ContentID]
	var rs *reactionSet
	if c != nil {
		rs = c.find(op.ReactionType)
	}
	if rs == nil {
		var orphans map[uint32]int64
		if m.orphans != nil {
			orphans = m.orphans[setKey{op.ContentID, op.ReactionType}]
		}
		if orphans != nil && op.TS != 0 {
			// Stale against a tombstone: decide before creating anything, so that the
			// content stays unknown.
			if uid, ok := m.users.lookup(op.UserID); ok {
				if prev := orphans[uid]; op.TS <= prev {
					*res = Result{Stale: true}
					return Applied{prevTS: prev, ts: prev}
				}
			}
		}
		// The new set (and content) are attached once the set holds the member
		// (attach), so that Counts never sees it empty.
		if c == nil {
			c = &content{}
			a.flags |= createdContent
		}
		rs = &reactionSet{}
		a.flags |= createdReaction
		if orphans != nil {
			for uid, ts := range orphans { // packed beside the members to come
				rs.members.setStamp(uid, ts)
			}
			delete(m.orphans, setKey{op.ContentID, op.ReactionType})
			a.flags |= adoptedOrphans
		}
	}
	uid := m.users.intern(op.UserID)
	var prev, prevTS, stamp int64
	var member bool
	at := -1
	if op.TS != 0 {
		prev, member, prevTS, at = rs.members.lookup(uid)
		a.prevTS, a.ts = prevTS, prevTS
		// Decide staleness before changing anything.
		if op.TS < a.prevTS || (op.TS == a.prevTS && !member) {
			if member {
				a.flags |= wasMember | isMember
			}
			*res = Result{Count: int64(rs.members.len()), Expiry: prev, PrevExpiry: prev, Stale: true}
			m.attach(op.ContentID, op.ReactionType, c, rs, a.flags)
			return a
		}
		if op.TS > a.prevTS {
			stamp, a.ts = op.TS, op.TS
		}
	}
	prev, member, prevTS = rs.members.putStamped(at, uid, op.ExpiresAt, stamp)
	if op.TS == 0 {
		a.prevTS, a.ts = prevTS, prevTS
	}
	if member {
		a.flags |= wasMember
	} else {
		c.seq.Add(1)
	}
	a.flags |= isMember
	*res = Result{Changed: !member, Count: int64(rs.members.len()), Expiry: op.ExpiresAt, PrevExpiry: prev}
	m.attach(op.ContentID, op.ReactionType, c, rs, a.flags)
	return a
}

// attach makes the set (and content) that add created, as flags say, part of the
// index; it does nothing if add created none.
func (m *Memory) attach(contentID, reactionType string, c *content, rs *reactionSet, flags applyFlags) {
	if !flags.has(createdReaction) {
		return
	}
	m.dir.Lock()
	if flags.has(createdContent) {
		m.contents[strings.Clone(contentID)] = c
	}
	c.insert(reactionType, rs)
	m.dir.Unlock()
}

// remove applies a Remove or an Expire and writes its outcome to res; the caller holds
// the write lock.
func (m *Memory) remove(op *Op, res *Result) Applied {
	stamped := op.Action == Remove && op.TS != 0
	c := m.contents[op.ContentID]
	var rs *reactionSet
	if c != nil {
		rs = c.find(op.ReactionType)
	}
	if rs == nil {
		if !stamped {
			*res = Result{}
			return Applied{}
		}
		return m.removeOrphan(op, res)
	}
	var uid uint32
	if stamped {
		uid = m.users.intern(op.UserID) // it leaves a tombstone
	} else {
		var ok bool
		if uid, ok = m.users.lookup(op.UserID); !ok {
			*res = Result{Count: int64(rs.members.len())}
			return Applied{}
		}
	}
	var a Applied
	if op.Action == Remove && !stamped {
		// Nothing can keep the member: remove it in one lookup.
		exp, ts, member := rs.members.delStamped(uid)
		a.prevTS, a.ts = ts, ts
		if !member {
			*res = Result{Count: int64(rs.members.len())}
			return a
		}
		c.seq.Add(1)
		a.flags |= wasMember
		*res = Result{Changed: true, Count: int64(rs.members.len()), PrevExpiry: exp}
		return a
	}
	exp, member, prevTS, _ := rs.members.lookup(uid)
	a.prevTS, a.ts = prevTS, prevTS
	if member {
		a.flags |= wasMember | isMember
	}
	if stamped {
		if op.TS < a.prevTS {
			*res = Result{Count: int64(rs.members.len()), Expiry: exp, PrevExpiry: exp, Stale: true}
			return a
		}
		if op.TS > a.prevTS {
			rs.setStamp(uid, op.TS)
			a.ts = op.TS
		}
	}
	if !member {
		*res = Result{Count: int64(rs.members.len())}
		return a
	}
	if op.Action == Expire && (exp == 0 || exp > op.ExpiresAt) {
		*res = Result{Count: int64(rs.members.len()), Expiry: exp, PrevExpiry: exp}
		return a
	}
	rs.members.del(uid)
	c.seq.Add(1)
	a.flags &^= isMember
	*res = Result{Changed: true, Count: int64(rs.members.len()), PrevExpiry: exp}
	return a
}

// removeOrphan applies a timestamped remove on a set that does not exist: it remembers
// the TS aside, in m.orphans, and leaves the content unknown.
func (m *Memory) removeOrphan(op *Op, res *Result) Applied {
	k := setKey{op.ContentID, op.ReactionType}
	if m.orphans == nil {
		m.orphans = make(map[setKey]map[uint32]int64)
	}
	stamps := m.orphans[k]
	uid := m.users.intern(op.UserID)
	prev := stamps[uid]
	a := Applied{prevTS: prev, ts: prev}
	switch {
	case op.TS < prev:
		*res = Result{Stale: true}
		return a
	case op.TS > prev:
		if stamps == nil {
			stamps = make(map[uint32]int64)
			m.orphans[k] = stamps
		}
		stamps[uid] = op.TS
		a.ts = op.TS
	}
	*res = Result{}
	return a
}

// stamp returns uid's remembered TS, 0 if none.
func (rs *reactionSet) stamp(uid uint32) int64 { return rs.members.stamp(uid) }

// setStamp makes ts (not 0) uid's remembered TS.
func (rs *reactionSet) setStamp(uid uint32, ts int64) { rs.members.setStamp(uid, ts) }

// forgetStamp deletes uid's remembered TS.
func (rs *reactionSet) forgetStamp(uid uint32) { rs.members.forgetStamp(uid) }

// undo reverts an op that add or remove applied with the given result; ops are undone in the
// reverse order of their application. The caller holds the write lock.
func (m *Memory) undo(op *Op, res Result, a Applied) {
	if res.Stale || (!res.Changed && a.flags&(createdContent|createdReaction) == 0 &&
		res.Expiry == res.PrevExpiry && a.ts == a.prevTS) {
		return
	}
	c := m.contents[op.ContentID]
	var rs *reactionSet
	if c != nil {
		rs = c.find(op.ReactionType)
	}
	uid, _ := m.users.lookup(op.UserID)
	if a.ts != a.prevTS {
		switch {
		case rs != nil && a.prevTS == 0:
			rs.forgetStamp(uid)
		case rs != nil:
			rs.setStamp(uid, a.prevTS)
		default:
			stamps := m.orphans[setKey{op.ContentID, op.ReactionType}]
			if a.prevTS == 0 {
				delete(stamps, uid)
			} else {
				stamps[uid] = a.prevTS
			}
			if len(stamps) == 0 {
				delete(m.orphans, setKey{op.ContentID, op.ReactionType})
			}
		}
	}
	if op.Action != Add {
		if res.Changed {
			rs.members.put(uid, res.PrevExpiry)
			c.seq.Add(1)
		}
		return
	}
	if !res.Changed { // a refresh: restore the old expiry
		rs.members.put(uid, res.PrevExpiry)
		return
	}
	rs.members.del(uid)
	c.seq.Add(1)
	if !a.flags.has(createdReaction) {
		return
	}
	if a.flags.has(adoptedOrphans) {
		m.orphans[setKey{op.ContentID, op.ReactionType}] = rs.members.stampMap()
	}
	m.dir.Lock()
	c.remove(op.ReactionType)
	if a.flags.has(createdContent) {
		delete(m.contents, op.ContentID)
	}
	m.dir.Unlock()
}

// Tombstone is one remembered TS of a user not in its set (see Op.TS).
type Tombstone struct {
	ContentID, ReactionType, UserID string
	TS                              int64
	uid                             uint32
}

// tombstones returns the tombstones older than before. The caller holds a lock.
func (m *Memory) tombstones(before int64) []Tombstone {
	var out []Tombstone
	for cid, c := range m.contents {
		for i, rs := range c.reactions {
			rs.members.eachTombstone(func(uid uint32, ts int64) {
				if ts < before {
					out = append(out, Tombstone{cid, c.names[i], m.users.name(uid), ts, uid})
				}
			})
		}
	}
	for k, stamps := range m.orphans {
		for uid, ts := range stamps {
			if ts < before {
				out = append(out, Tombstone{k.content, k.reaction, m.users.name(uid), ts, uid})
			}
		}
	}
	return out
}

// forget deletes the tombstones that are still as listed, and returns how many it
// deleted. The caller holds the write lock.
func (m *Memory) forget(tombs []Tombstone) int {
	n := 0
	for _, t := range tombs {
		var rs *reactionSet
		if c := m.contents[t.ContentID]; c != nil {
			rs = c.find(t.ReactionType)
		}
		if rs != nil {
			if rs.members.has(t.uid) || rs.stamp(t.uid) != t.TS {
				continue
			}
			rs.forgetStamp(t.uid)
			n++
			continue
		}
		stamps := m.orphans[setKey{t.ContentID, t.ReactionType}]
		if ts, ok := stamps[t.uid]; !ok || ts != t.TS {
			continue
		}
		delete(stamps, t.uid)
		n++
		if len(stamps) == 0 {
			delete(m.orphans, setKey{t.ContentID, t.ReactionType})
		}
	}
	return n
}

// ListTombstones returns the tombstones older than before, under the read lock. A
// durable engine deletes them from its copy, then calls ForgetTombstones.
func (m *Memory) ListTombstones(before int64) ([]Tombstone, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.tombstones(before), nil
}

// PurgeTombstones implements Store. It lists the tombstones under the read lock and
// takes the write lock only to delete them, so queries wait for the deletion only.
func (m *Memory) PurgeTombstones(_ context.Context, before int64) (int, error) {
	tombs, err := m.ListTombstones(before)
	if err != nil || len(tombs) == 0 {
		return 0, err
	}
	return m.ForgetTombstones(tombs)
}

// ensureReaction makes (content, reaction) known, with no members; the caller holds
// the write lock.
func (m *Memory) ensureReaction(contentID, reactionType string) *reactionSet {
	c := m.contents[contentID]
	var rs *reactionSet
	if c != nil {
		rs = c.find(reactionType)
	}
	if rs == nil {
		m.dir.Lock()
		if c == nil {
			c = &content{}
			m.contents[strings.Clone(contentID)] = c
		}
		rs = &reactionSet{}
		c.insert(reactionType, rs)
		m.dir.Unlock()
	}
	return rs
}

func (c *content) find(reactionType string) *reactionSet {
	// Contents hold few reactions: a linear scan beats a map here.
	for i, name := range c.names {
		if name == reactionType {
			return c.reactions[i]
		}
	}
	return nil
}

// insert adds rs, the set of a reaction type c does not hold yet; the caller holds
// both locks.
func (c *content) insert(reactionType string, rs *reactionSet) {
	i, _ := slices.BinarySearch(c.names, reactionType)
	c.reactions = insertExact(c.reactions, i, rs)
	c.names = insertExact(c.names, i, strings.Clone(reactionType))
}

// insertExact returns a copy of x with v inserted at i, exactly as long as needed.
func insertExact[T any](x []T, i int, v T) []T {
	out := make([]T, len(x)+1)
	copy(out, x[:i])
	out[i] = v
	copy(out[i+1:], x[i:])
	return out
}

func (c *content) remove(reactionType string) {
	if i, ok := slices.BinarySearch(c.names, reactionType); ok {
		c.reactions = slices.Delete(c.reactions, i, i+1)
		c.names = slices.Delete(c.names, i, i+1)
	}
}

// content returns a content for a query; the caller holds a read lock (mu or dir).
func (m *Memory) content(contentID string) (*content, error) {
	if m.closed {
		return nil, ErrClosed
	}
	if c := m.contents[contentID]; c != nil {
		return c, nil
	}
	return nil, ErrNotFound
}

// countTries is how many times Counts reads a content's counts without the write lock
// before it waits for the batch to end: a content changing faster than it can be read.
var countTries = 8

// Counts implements Store. It does not wait for a batch being applied (see Memory).
func (m *Memory) Counts(_ context.Context, contentID string) ([]ReactionCount, error) {
	m.dir.RLock()
	c, err := m.content(contentID)
	if err != nil {
		m.dir.RUnlock()
		return nil, err
	}
	counts := make([]ReactionCount, 0, len(c.reactions))
	for range countTries {
		seq := c.seq.Load()
		counts = appendCounts(counts[:0], c)
		if c.seq.Load() == seq {
			m.dir.RUnlock()
			return counts, nil
		}
	}
	// Release dir first: the writer, holding mu, may be waiting for it.
	m.dir.RUnlock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if c, err = m.content(contentID); err != nil {
		return nil, err
	}
	return appendCounts(counts[:0], c), nil
}

// appendCounts appends the count of each of c's sets to counts.
func appendCounts(counts []ReactionCount, c *content) []ReactionCount {
	for i, rs := range c.reactions {
		counts = append(counts, ReactionCount{ReactionType: c.names[i], Count: int64(rs.members.len())})
	}
	return counts
}

// Members implements Store. It sorts the set's user ids on every call: O(n log n) in
// the size of the set.
func (m *Memory) Members(_ context.Context, contentID, reactionType, after string, limit int) ([]Member, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, err := m.content(contentID)
	if err != nil {
		return nil, err
	}
	rs := c.find(reactionType)
	if rs == nil {
		return []Member{}, nil
	}
	all := make([]Member, 0, rs.members.len())
	rs.members.each(func(uid uint32, exp int64) {
		if name := m.users.name(uid); name > after {
			all = append(all, Member{UserID: name, ExpiresAt: exp})
		}
	})
	sort.Slice(all, func(i, j int) bool { return all[i].UserID < all[j].UserID })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// Contents implements Store. It sorts the matching ids on every call.
func (m *Memory) Contents(_ context.Context, prefix, after string, limit int) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	var ids []string
	for id := range m.contents {
		if id > after && strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

// UserMemberships implements Store. There is no index by user: it looks the user up
// in every set, O(number of (content, reaction) sets).
func (m *Memory) UserMemberships(_ context.Context, userID string) ([]Membership, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	uid, ok := m.users.lookup(userID)
	if !ok {
		return []Membership{}, nil
	}
	out := []Membership{}
	for cid, c := range m.contents {
		for i, rs := range c.reactions {
			if exp, ok := rs.members.get(uid); ok {
				out = append(out, Membership{ContentID: cid, ReactionType: c.names[i], ExpiresAt: exp})
			}
		}
	}
	slices.SortFunc(out, func(a, b Membership) int {
		if c := strings.Compare(a.ContentID, b.ContentID); c != 0 {
			return c
		}
		return strings.Compare(a.ReactionType, b.ReactionType)
	})
	return out, nil
}

// Expiring implements Store.
func (m *Memory) Expiring(fn func(contentID, reactionType, userID string, expiresAt int64)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for cid, c := range m.contents {
		for i, rs := range c.reactions {
			rs.members.expiring(func(uid uint32, exp int64) {
				fn(cid, c.names[i], m.users.name(uid), exp)
			})
		}
	}
}

// Close implements Store. The memory is released to the garbage collector.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dir.Lock()
	defer m.dir.Unlock()
	m.closed = true
	m.contents = nil
	m.users = interner{}
	m.orphans = nil
	return nil
}

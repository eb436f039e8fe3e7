package store

import "slices"

// The surface a durable engine (store/durable) builds on: it keeps its copy of the
// index on disk and answers every query from a Memory. ApplyTracked tells it what
// each op did, so that it writes only that; Undo reverts a batch its disk refused;
// ListTombstones and ForgetTombstones purge; a Loader rebuilds the index at start.

// ApplyTracked is Apply that also reports in ap (len(ap) >= len(ops)) what each op
// did, for the caller to persist it, or to Undo it should persisting fail.
func (m *Memory) ApplyTracked(ops []Op, out []Result, ap []Applied) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.sinceCompact += uint64(len(ops))
	for i := range ops {
		if op := &ops[i]; op.Action == Add {
			ap[i] = m.add(op, &out[i])
		} else {
			ap[i] = m.remove(op, &out[i])
		}
	}
	return nil
}

// Undo reverts a batch that ApplyTracked applied with the results out and ap, which
// must be the last batch applied.
func (m *Memory) Undo(ops []Op, out []Result, ap []Applied) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	for i := len(ops) - 1; i >= 0; i-- {
		m.undo(&ops[i], out[i], ap[i])
	}
}

// CreatedReaction reports whether the op created its (content, reaction) set.
func (a *Applied) CreatedReaction() bool { return a.flags.has(createdReaction) }

// WasMember reports whether the user was in the set before the op.
func (a *Applied) WasMember() bool { return a.flags.has(wasMember) }

// IsMember reports whether the user is in the set after the op.
func (a *Applied) IsMember() bool { return a.flags.has(isMember) }

// PrevTS is the user's remembered TS in the set before the op; 0: none.
func (a *Applied) PrevTS() int64 { return a.prevTS }

// TS is the user's remembered TS in the set after the op; 0: none.
func (a *Applied) TS() int64 { return a.ts }

// ForgetTombstones deletes the tombstones (from ListTombstones) that are still as
// listed, and returns how many it deleted.
func (m *Memory) ForgetTombstones(tombs []Tombstone) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.forget(tombs), nil
}

// LoadBatchMax is the most memberships Loader.Members interns together.
const LoadBatchMax = internBatchMax

// A Loader fills a new, empty Memory from a durable copy before it is shared: the
// sets (Set), their memberships (Members) and then the tombstones (Tombstone). It
// holds the write lock from Memory.Load to Done; it does not bump the contents'
// change counters, as Apply does, since no reader can be waiting.
type Loader struct {
	m    *Memory
	run  setRun
	uids [internBatchMax]uint32

	// The (content, reaction) of the last tombstone and its set, or its orphans when
	// the set does not exist: tombstones come sorted by set.
	curC, curR []byte
	tombSet    bool
	rs         *reactionSet
	orphans    map[uint32]int64
}

// LoadSet is a (content, reaction) set a Loader fills.
type LoadSet struct{ rs *reactionSet }

// Load starts filling m; call Done at the end.
func (m *Memory) Load() *Loader {
	m.mu.Lock()
	return &Loader{m: m}
}

// Set makes (content, reaction) known, with no members yet, and returns it.
func (l *Loader) Set(contentID, reactionType string) LoadSet {
	return LoadSet{l.m.ensureReaction(contentID, reactionType)}
}

// Members adds memberships: users[i] to sets[i] with the expiry exps[i] and the
// remembered TS tss[i] (0: none). The users of a batch are interned together, which
// overlaps the cache misses of a large index (interner.internBatch); memberships of
// one set that follow one another go into it by user number (setRun), the cheapest
// order for its sorted forms. users[i] is not kept.
func (l *Loader) Members(sets []LoadSet, users [][]byte, exps, tss []int64) {
	for len(users) > 0 {
		n := min(len(users), internBatchMax)
		l.m.users.internBatch(users[:n], l.uids[:n])
		for i := range n {
			l.run.add(sets[i].rs, l.uids[i], exps[i], tss[i])
		}
		sets, users, exps, tss = sets[n:], users[n:], exps[n:], tss[n:]
	}
}

// Tombstone remembers ts (not 0) for a user not in the set (content, reaction),
// after the memberships: a set that does not exist keeps it aside, as a timestamped
// remove of a set never held does. Tombstones of one set should come together.
func (l *Loader) Tombstone(contentID, reactionType, userID []byte, ts int64) {
	l.run.flush()
	m := l.m
	if !l.tombSet || string(contentID) != string(l.curC) || string(reactionType) != string(l.curR) {
		l.curC, l.curR = append(l.curC[:0], contentID...), append(l.curR[:0], reactionType...)
		l.tombSet, l.rs, l.orphans = true, nil, nil
		if cs := m.contents[string(contentID)]; cs != nil {
			l.rs = cs.find(string(reactionType))
		}
		if l.rs == nil {
			if m.orphans == nil {
				m.orphans = make(map[setKey]map[uint32]int64)
			}
			k := setKey{string(contentID), string(reactionType)}
			if l.orphans = m.orphans[k]; l.orphans == nil {
				l.orphans = make(map[uint32]int64)
				m.orphans[k] = l.orphans
			}
		}
	}
	uid := m.users.internBytes(userID)
	if l.rs == nil {
		l.orphans[uid] = ts
	} else if !l.rs.members.has(uid) || ts > l.rs.stamp(uid) {
		// A tombstone of a member is never written; should one be found, the newer TS
		// is what the store would have remembered.
		l.rs.setStamp(uid, ts)
	}
}

// Done ends the load and releases the Memory. The sets' arrays were laid at their
// length, one by one: Compact would take a few percent off them (the allocator's size
// classes) for a transient of the whole index's size (22 MiB over a 98 MiB peak on
// 10M memberships), so the index waits for ops as any other.
func (l *Loader) Done() {
	l.run.flush()
	l.m.mu.Unlock()
}

// setRun gathers the memberships of one set as the loader reads them (in the order of
// their user ids as strings, which is not the order of their numbers) and puts them
// into the set in the order of their numbers: both of the set's sorted forms (members
// and remembered TS) then take each one at their end instead of moving the ones after
// it, which was a third of the loader's time on 10M memberships.
type setRun struct {
	rs   *reactionSet
	keys []uint64 // uid<<32 | the membership's index in exps and tss
	exps []int64
	tss  []int64
}

// setRunMax bounds a run: the memberships of a set larger than that go in by parts.
const setRunMax = 1 << 16

func (r *setRun) add(rs *reactionSet, uid uint32, exp, ts int64) {
	if rs != r.rs || len(r.keys) == setRunMax {
		r.flush()
		r.rs = rs
	}
	r.keys = append(r.keys, uint64(uid)<<32|uint64(len(r.exps)))
	r.exps = append(r.exps, exp)
	r.tss = append(r.tss, ts)
}

// flush puts the run's memberships into their set, by user number.
func (r *setRun) flush() {
	if len(r.keys) == 0 {
		return
	}
	slices.Sort(r.keys)
	rs := r.rs
	rs.members.reserve(len(r.keys), uint32(r.keys[len(r.keys)-1]>>32))
	for _, k := range r.keys {
		uid, i := uint32(k>>32), uint32(k)
		rs.members.put(uid, r.exps[i])
		if ts := r.tss[i]; ts != 0 {
			rs.setStamp(uid, ts)
		}
	}
	r.keys, r.exps, r.tss = r.keys[:0], r.exps[:0], r.tss[:0]
}

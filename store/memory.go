package store

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Memory is a Store that keeps every set in memory. User ids are interned to integers
// so that a membership costs one map entry of 4 bytes of key.
//
// Memory is safe for concurrent use: Apply takes a write lock for the whole batch and
// queries take a read lock, so a reader sees either none or all of a batch.
type Memory struct {
	mu       sync.RWMutex
	closed   bool
	contents map[string]*content
	userIDs  map[string]uint32 // interned user ids
	users    []string          // user names by interned id
}

type content struct {
	reactions []*reactionSet // sorted by reaction type; never shrinks
}

type reactionSet struct {
	reactionType string
	members      map[uint32]int64 // user -> expiry (unix ms, 0: none)
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store.
func NewMemory() *Memory {
	return &Memory{
		contents: make(map[string]*content),
		userIDs:  make(map[string]uint32),
	}
}

// Apply implements Store.
func (m *Memory) Apply(_ context.Context, ops []Op, out []Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for i := range ops {
		out[i], _ = m.apply(&ops[i])
	}
	return nil
}

// created says what applying an add had to create; undo uses it.
type created uint8

const (
	createdContent created = 1 << iota
	createdReaction
)

// apply applies one op; the caller holds the write lock.
func (m *Memory) apply(op *Op) (Result, created) {
	if op.Action == Remove || op.Action == Expire {
		c := m.contents[op.ContentID]
		if c == nil {
			return Result{}, 0
		}
		rs := c.find(op.ReactionType)
		if rs == nil {
			return Result{}, 0
		}
		uid, ok := m.userIDs[op.UserID]
		if !ok {
			return Result{Count: int64(len(rs.members))}, 0
		}
		exp, member := rs.members[uid]
		if !member {
			return Result{Count: int64(len(rs.members))}, 0
		}
		if op.Action == Expire && (exp == 0 || exp > op.ExpiresAt) {
			return Result{Count: int64(len(rs.members)), Expiry: exp, PrevExpiry: exp}, 0
		}
		delete(rs.members, uid)
		return Result{Changed: true, Count: int64(len(rs.members)), PrevExpiry: exp}, 0
	}

	var cr created
	c := m.contents[op.ContentID]
	if c == nil {
		c = &content{}
		m.contents[op.ContentID] = c
		cr |= createdContent
	}
	rs := c.find(op.ReactionType)
	if rs == nil {
		rs = c.insert(op.ReactionType)
		cr |= createdReaction
	}
	uid := m.intern(op.UserID)
	prev, member := rs.members[uid]
	rs.members[uid] = op.ExpiresAt
	return Result{Changed: !member, Count: int64(len(rs.members)), Expiry: op.ExpiresAt, PrevExpiry: prev}, cr
}

// undo reverts an op that apply applied with the given result; ops are undone in the
// reverse order of their application. The caller holds the write lock.
func (m *Memory) undo(op *Op, res Result, cr created) {
	if !res.Changed && cr == 0 && res.Expiry == res.PrevExpiry {
		return
	}
	c := m.contents[op.ContentID]
	rs := c.find(op.ReactionType)
	uid := m.userIDs[op.UserID]
	if op.Action != Add {
		rs.members[uid] = res.PrevExpiry
		return
	}
	if !res.Changed { // a refresh: restore the old expiry
		rs.members[uid] = res.PrevExpiry
		return
	}
	delete(rs.members, uid)
	if cr&createdReaction != 0 {
		c.remove(op.ReactionType)
	}
	if cr&createdContent != 0 {
		delete(m.contents, op.ContentID)
	}
}

// ensureReaction makes (content, reaction) known, with no members; the caller holds
// the write lock.
func (m *Memory) ensureReaction(contentID, reactionType string) *reactionSet {
	c := m.contents[contentID]
	if c == nil {
		c = &content{}
		m.contents[contentID] = c
	}
	rs := c.find(reactionType)
	if rs == nil {
		rs = c.insert(reactionType)
	}
	return rs
}

func (m *Memory) intern(user string) uint32 {
	if id, ok := m.userIDs[user]; ok {
		return id
	}
	id := uint32(len(m.users))
	m.users = append(m.users, user)
	m.userIDs[user] = id
	return id
}

func (c *content) find(reactionType string) *reactionSet {
	// Contents hold few reactions: a linear scan beats a map here.
	for _, rs := range c.reactions {
		if rs.reactionType == reactionType {
			return rs
		}
	}
	return nil
}

func (c *content) insert(reactionType string) *reactionSet {
	rs := &reactionSet{reactionType: reactionType, members: make(map[uint32]int64)}
	i := sort.Search(len(c.reactions), func(i int) bool { return c.reactions[i].reactionType >= reactionType })
	c.reactions = append(c.reactions, nil)
	copy(c.reactions[i+1:], c.reactions[i:])
	c.reactions[i] = rs
	return rs
}

func (c *content) remove(reactionType string) {
	for i, rs := range c.reactions {
		if rs.reactionType == reactionType {
			c.reactions = append(c.reactions[:i], c.reactions[i+1:]...)
			return
		}
	}
}

// content returns a content for a query; the caller holds the read lock.
func (m *Memory) content(contentID string) (*content, error) {
	if m.closed {
		return nil, ErrClosed
	}
	if c := m.contents[contentID]; c != nil {
		return c, nil
	}
	return nil, ErrNotFound
}

// Counts implements Store.
func (m *Memory) Counts(_ context.Context, contentID string) ([]ReactionCount, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, err := m.content(contentID)
	if err != nil {
		return nil, err
	}
	counts := make([]ReactionCount, len(c.reactions))
	for i, rs := range c.reactions {
		counts[i] = ReactionCount{ReactionType: rs.reactionType, Count: int64(len(rs.members))}
	}
	return counts, nil
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
	all := make([]Member, 0, len(rs.members))
	for uid, exp := range rs.members {
		if name := m.users[uid]; name > after {
			all = append(all, Member{UserID: name, ExpiresAt: exp})
		}
	}
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
	uid, ok := m.userIDs[userID]
	if !ok {
		return []Membership{}, nil
	}
	out := []Membership{}
	for cid, c := range m.contents {
		for _, rs := range c.reactions {
			if exp, ok := rs.members[uid]; ok {
				out = append(out, Membership{ContentID: cid, ReactionType: rs.reactionType, ExpiresAt: exp})
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
		for _, rs := range c.reactions {
			for uid, exp := range rs.members {
				if exp != 0 {
					fn(cid, rs.reactionType, m.users[uid], exp)
				}
			}
		}
	}
}

// Close implements Store. The memory is released to the garbage collector.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.contents = nil
	m.userIDs = nil
	m.users = nil
	return nil
}

package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned by queries for a content that has never held a membership.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store closed")

// ErrUnavailable is returned by Apply while the store cannot persist (for example
// the disk is full, or Redis cannot be reached); nothing of the batch was applied.
var ErrUnavailable = errors.New("store unavailable")

// Durability modes: how the daemon keeps what the writer applied (store.durability in
// the configuration). A Redis store has its own.
const (
	DurabilitySync  = "sync"  // the durable store fsyncs every batch before it is acknowledged
	DurabilityAsync = "async" // the durable store fsyncs every sync interval
	DurabilityNone  = "none"  // memory only
)

// Action says whether an Op adds a user to a set or removes one.
type Action uint8

// The actions an Op can carry.
const (
	Add Action = iota + 1
	Remove
	// Expire removes a membership only if it has an expiry and that expiry is at or
	// before the Op's ExpiresAt: a membership refreshed meanwhile stays.
	Expire
)

// String returns "add" or "remove".
func (a Action) String() string {
	switch a {
	case Add:
		return "add"
	case Remove:
		return "remove"
	case Expire:
		return "expire"
	}
	return "unknown"
}

// Op is one mutation of the set of users holding ReactionType on ContentID.
type Op struct {
	ContentID    string
	ReactionType string
	UserID       string
	Action       Action
	// TS is the event's own time, unix milliseconds, 0 when absent; never negative. Per
	// (content, reaction, user) a store remembers the newest TS applied, for members and,
	// as a tombstone, for users removed (last-writer-wins element set):
	//   - TS > remembered (or nothing remembered): the op applies and TS is remembered;
	//   - TS == remembered: a Remove applies (remove wins a tie); an Add is stale if the
	//     user is not a member, else it is a duplicate (it still refreshes ExpiresAt);
	//   - TS < remembered: the op is stale: nothing changes and Result.Stale is set.
	// An op with TS 0 applies in arrival order and leaves the remembered TS as it was.
	// Expire ignores TS, and the remembered TS stays as a tombstone. A timestamped Remove
	// of a (content, reaction) never held leaves a tombstone that no query shows (the
	// content stays unknown). So any permutation and duplication of timestamped ops ends
	// in the same members (PurgeTombstones aside).
	TS int64
	// ExpiresAt, for Add: unix milliseconds at which the membership ends unless it is
	// added again (refreshed) before; 0: never. For Expire: the current time.
	ExpiresAt int64
}

// Result is the outcome of one Op.
type Result struct {
	Changed    bool  // whether the set changed (false for a duplicate add or an absent remove)
	Count      int64 // size of the (content, reaction) set after the Op
	Expiry     int64 // the membership's expiry after the Op (unix ms; 0: none or not a member)
	PrevExpiry int64 // the membership's expiry before the Op
	// Stale: the Op was older than what the store remembered (see Op.TS) and changed
	// nothing; Count, Expiry and PrevExpiry are then the current ones.
	Stale bool
}

// Change is one applied change of a set: a member added, removed or expired. The
// writer hands its own to ingest.Options.OnChanges; a Redis store receives other
// nodes' from its change feed.
type Change struct {
	ContentID    string `json:"content_id"`
	ReactionType string `json:"reaction_type"`
	UserID       string `json:"user_id"`
	Action       Action `json:"-"`
	Count        int64  `json:"count"` // the set's size after the change
	At           int64  `json:"at"`    // unix ms when it was applied (by another node: when it sent the batch)
	ExpiresAt    int64  `json:"-"`     // the membership's expiry after the change (unix ms; 0: none)
}

// Membership is one (content, reaction) a user holds.
type Membership struct {
	ContentID    string `json:"content_id"`
	ReactionType string `json:"reaction_type"`
	ExpiresAt    int64  `json:"-"` // unix ms; 0: does not expire
}

// Member is one user holding a reaction.
type Member struct {
	UserID    string `json:"user_id"`
	ExpiresAt int64  `json:"-"` // unix ms; 0: does not expire
}

// ReactionCount is the number of users currently holding one reaction.
type ReactionCount struct {
	ReactionType string `json:"reaction_type"`
	Count        int64  `json:"count"`
}

// Store holds, per (content, reaction), the set of users that added the reaction and
// have not removed it.
//
// Implementations are safe for concurrent use by many readers and one writer: Apply is
// called by a single goroutine (the ingest writer) while queries run concurrently.
type Store interface {
	// Apply applies ops in order and writes the outcome of ops[i] to out[i] (len(out)
	// >= len(ops)). On error none of the ops is applied. Queries may see part of a
	// batch, but a content's counts only as they were between two ops.
	Apply(ctx context.Context, ops []Op, out []Result) error

	// Counts returns the count of every reaction a content has ever held, sorted by
	// reaction type; a reaction whose users all left has count 0. It returns
	// ErrNotFound for a content never seen.
	Counts(ctx context.Context, contentID string) ([]ReactionCount, error)

	// Members returns up to limit members of (content, reaction) whose user ids sort
	// after the given one, in user id order; ErrNotFound for an unknown content.
	Members(ctx context.Context, contentID, reactionType, after string, limit int) ([]Member, error)

	// Contents returns up to limit content ids that start with prefix and sort after
	// the given one, in order.
	Contents(ctx context.Context, prefix, after string, limit int) ([]string, error)

	// UserMemberships returns every (content, reaction) that userID currently holds,
	// sorted by content then reaction.
	UserMemberships(ctx context.Context, userID string) ([]Membership, error)

	// Expiring calls fn for every membership that has an expiry. The writer uses it
	// at start to rebuild its expiry timers; it must not run concurrently with Apply.
	Expiring(fn func(contentID, reactionType, userID string, expiresAt int64))

	// PurgeTombstones forgets the remembered TS of users no longer in a set whose TS is
	// before the given unix ms, and returns how many it forgot. The writer calls it; it
	// must not run concurrently with Apply.
	PurgeTombstones(ctx context.Context, before int64) (int, error)

	// Close releases the store's resources. It is safe to call more than once.
	Close() error
}

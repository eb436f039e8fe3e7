package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned by queries for a content that has never held a membership.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store closed")

// Action says whether an Op adds a user to a set or removes one.
type Action uint8

// The actions an Op can carry.
const (
	Add Action = iota + 1
	Remove
)

// String returns "add" or "remove".
func (a Action) String() string {
	switch a {
	case Add:
		return "add"
	case Remove:
		return "remove"
	}
	return "unknown"
}

// Op is one mutation of the set of users holding ReactionType on ContentID.
type Op struct {
	ContentID    string
	ReactionType string
	UserID       string
	Action       Action
	TS           int64 // unix milliseconds from the event, 0 when absent
}

// Result is the outcome of one Op.
type Result struct {
	Changed bool  // whether the set changed (false for a duplicate add or an absent remove)
	Count   int64 // size of the (content, reaction) set after the Op
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
	// Apply applies ops in order, as one atomic step, and writes the outcome of ops[i]
	// to out[i] (len(out) >= len(ops)). On error none of the ops is applied.
	Apply(ctx context.Context, ops []Op, out []Result) error

	// Counts returns the count of every reaction a content has ever held, sorted by
	// reaction type; a reaction whose users all left has count 0. It returns
	// ErrNotFound for a content never seen.
	Counts(ctx context.Context, contentID string) ([]ReactionCount, error)

	// Close releases the store's resources. It is safe to call more than once.
	Close() error
}

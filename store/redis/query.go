package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"

	"github.com/arina-dev/arina/store"
)

// query prepares a query: ErrClosed after Close, else a context bounded by Timeout.
func (s *Store) query(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	return ctx, cancel, nil
}

// Counts implements store.Store with one HGETALL.
func (s *Store) Counts(ctx context.Context, contentID string) ([]store.ReactionCount, error) {
	ctx, cancel, err := s.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	m, err := s.c.HGetAll(ctx, s.k.content(s.k.tag(contentID), kindCounts)).Result()
	if err != nil {
		return nil, s.wrap(err, "counts of %q", contentID)
	}
	if len(m) == 0 {
		return nil, store.ErrNotFound
	}
	counts := make([]store.ReactionCount, 0, len(m))
	for r, v := range m {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: counts of %q: reaction %q: %w", contentID, r, err)
		}
		counts = append(counts, store.ReactionCount{ReactionType: r, Count: n})
	}
	slices.SortFunc(counts, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) })
	return counts, nil
}

// Members implements store.Store with one script call (members.lua): a consistent
// page, O(log n + limit) in the size of the set.
func (s *Store) Members(ctx context.Context, contentID, reactionType, after string, limit int) ([]store.Member, error) {
	ctx, cancel, err := s.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	tag := s.k.tag(contentID)
	lo := "-"
	if after != "" {
		lo = "(" + after
	}
	vals, err := s.runScript(ctx, scriptMembers,
		[]string{s.k.content(tag, kindCounts), s.k.set(tag, kindMembers, reactionType), s.k.set(tag, kindExpiry, reactionType)},
		lo, max(limit, 0)).Slice()
	if errors.Is(err, goredis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap(err, "members of %q %q", contentID, reactionType)
	}
	if len(vals)%2 != 0 {
		return nil, fmt.Errorf("redis: members of %q %q: odd reply of %d values", contentID, reactionType, len(vals))
	}
	out := make([]store.Member, 0, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		u, ok := vals[i].(string)
		exp, err := asInt(vals[i+1])
		if !ok || err != nil {
			return nil, fmt.Errorf("redis: members of %q %q: bad reply %v", contentID, reactionType, vals[i:i+2])
		}
		out = append(out, store.Member{UserID: u, ExpiresAt: exp})
	}
	return out, nil
}

// Contents implements store.Store with one ZRANGEBYLEX on the contents index.
func (s *Store) Contents(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	ctx, cancel, err := s.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	by := &goredis.ZRangeBy{Min: "-", Max: "+", Count: int64(max(limit, 0))}
	switch {
	case after != "" && after >= prefix:
		by.Min = "(" + after
	case prefix != "":
		by.Min = "[" + prefix
	}
	if end, ok := prefixEnd(prefix); ok {
		by.Max = "(" + end
	}
	ids, err := s.c.ZRangeByLex(ctx, s.k.contents(), by).Result()
	if err != nil {
		return nil, s.wrap(err, "contents with prefix %q after %q", prefix, after)
	}
	return ids, nil
}

// UserMemberships implements store.Store with one HGETALL on the user's index.
func (s *Store) UserMemberships(ctx context.Context, userID string) ([]store.Membership, error) {
	ctx, cancel, err := s.query(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	m, err := s.c.HGetAll(ctx, s.k.user(userID)).Result()
	if err != nil {
		return nil, s.wrap(err, "memberships of %q", userID)
	}
	out := make([]store.Membership, 0, len(m))
	for f, v := range m {
		c, r, ok := strings.Cut(f, "\x00")
		exp, member := parseIndexValue(v)
		if ok && member {
			out = append(out, store.Membership{ContentID: c, ReactionType: r, ExpiresAt: exp})
		}
	}
	slices.SortFunc(out, func(a, b store.Membership) int {
		return cmp.Or(strings.Compare(a.ContentID, b.ContentID), strings.Compare(a.ReactionType, b.ReactionType))
	})
	return out, nil
}

// parseIndexValue reads a user index value, "<version> m <expiry>" for a member or
// "<version> t <time>" for a former one.
func parseIndexValue(v string) (expiry int64, member bool) {
	_, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, false
	}
	state, n, ok := strings.Cut(rest, " ")
	if !ok || state != "m" {
		return 0, false
	}
	exp, err := strconv.ParseInt(n, 10, 64)
	return exp, err == nil
}

// scanCount is the COUNT hint of the SCAN family of commands.
const scanCount = 512

// scanKeys calls fn with each page of keys matching pattern on one server.
func scanKeys(ctx context.Context, c goredis.Cmdable, pattern string, fn func([]string) error) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Expiring implements store.Store: it SCANs every server for expiry hashes and reads
// each with HSCAN. It has no way to return an error: if Redis fails meanwhile, it
// logs the error, and the memberships it did not reach get no timer on this node
// (they still expire when another node, or this one after a restart, sees them).
// fn is never called concurrently.
func (s *Store) Expiring(fn func(contentID, reactionType, userID string, expiresAt int64)) {
	if s.closed.Load() {
		return
	}
	var mu sync.Mutex // ForEachMaster runs concurrently in cluster mode
	err := s.forEachMaster(context.Background(), func(ctx context.Context, c goredis.Cmdable) error {
		return scanKeys(ctx, c, s.k.setPattern(kindExpiry), func(keys []string) error {
			for _, key := range keys {
				content, reaction, ok := s.k.parseSet(key, kindExpiry)
				if !ok {
					continue
				}
				if err := hscan(ctx, c, key, func(user, v string) {
					exp, err := strconv.ParseInt(v, 10, 64)
					if err != nil || exp == 0 {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					fn(content, reaction, user, exp)
				}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	switch {
	case err == nil:
	case s.waitsForReach():
		s.log.Warn("memberships with an expiry not listed: redis not reached yet; they are listed once it answers", "err", s.wrap(err, "scanning expiries"))
	default:
		s.log.Error("listing memberships with an expiry failed; some get no expiry timer on this node", "err", s.wrap(err, "scanning expiries"))
	}
}

// hscan calls fn for every field of a hash.
func hscan(ctx context.Context, c goredis.Cmdable, key string, fn func(field, value string)) error {
	var cursor uint64
	for {
		kv, next, err := c.HScan(ctx, key, cursor, "", scanCount).Result()
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			fn(kv[i], kv[i+1])
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// purgeLimit is how many tombstones one purge.lua call forgets at most, so that no
// call blocks Redis for long.
const purgeLimit = 1000

// PurgeTombstones forgets the remembered TS of users no longer in a set whose TS is
// before the given unix ms, and returns how many it forgot. It SCANs every server for
// tombstone sets and runs purge.lua on each, pipelined by SCAN page. In cluster mode
// it also deletes the user index entries of former members written before then. The
// writer calls it; it must not run concurrently with Apply.
func (s *Store) PurgeTombstones(ctx context.Context, before int64) (int, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	var forgotten atomic.Int64
	b := strconv.FormatInt(before, 10)
	err := s.forEachMaster(ctx, func(ctx context.Context, c goredis.Cmdable) error {
		return scanKeys(ctx, c, s.k.setPattern(kindTomb), func(keys []string) error {
			for len(keys) > 0 {
				calls := make([]scriptCall, 0, len(keys))
				for _, key := range keys {
					content, reaction, ok := s.k.parseSet(key, kindTomb)
					if !ok {
						continue
					}
					tag := s.k.tag(content)
					calls = append(calls, scriptCall{script: scriptPurge,
						keys: []string{key, s.k.set(tag, kindTS, reaction), s.k.set(tag, kindMembers, reaction)},
						args: []any{b, purgeLimit}})
				}
				if _, err := s.runScripts(ctx, calls, nil); err != nil {
					return err
				}
				keys = keys[:0] // again: the sets that had more than purgeLimit
				for _, call := range calls {
					v, err := call.cmd.Slice()
					if err != nil || len(v) != 2 {
						return fmt.Errorf("purge script reply %v: %w", v, err)
					}
					n, err1 := asInt(v[0])
					seen, err2 := asInt(v[1])
					if err := errors.Join(err1, err2); err != nil {
						return err
					}
					forgotten.Add(n)
					if seen == purgeLimit {
						keys = append(keys, call.keys[0])
					}
				}
			}
			return nil
		})
	})
	if err == nil && s.split {
		err = s.purgeIndexes(ctx, b)
	}
	if err != nil {
		return int(forgotten.Load()), s.wrap(err, "purging tombstones before %d", before)
	}
	return int(forgotten.Load()), nil
}

// purgeIndexes deletes user index entries of former members written before the given
// time (cluster mode only: elsewhere apply.lua deletes them at once).
func (s *Store) purgeIndexes(ctx context.Context, before string) error {
	return s.forEachMaster(ctx, func(ctx context.Context, c goredis.Cmdable) error {
		return scanKeys(ctx, c, s.k.userPattern(), func(keys []string) error {
			calls := make([]scriptCall, len(keys))
			for i, key := range keys {
				calls[i] = scriptCall{script: scriptPurgeIndex, keys: []string{key}, args: []any{before}}
			}
			_, err := s.runScripts(ctx, calls, nil)
			return err
		})
	})
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/arina-dev/arina/store"
)

// errInvalidOp is wrapped by Apply's error for an op it refuses before sending
// anything: an unknown action, an empty identifier or one holding NUL (the edge
// rejects all of these; the store refuses them rather than write ambiguous keys).
var errInvalidOp = errors.New("invalid op")

func checkOp(op *store.Op) error {
	switch op.Action {
	case store.Add, store.Remove, store.Expire:
	default:
		return fmt.Errorf("%w: action %d", errInvalidOp, op.Action)
	}
	for _, id := range []string{op.ContentID, op.ReactionType, op.UserID} {
		if id == "" || strings.IndexByte(id, 0) >= 0 {
			return fmt.Errorf("%w: identifier %q", errInvalidOp, id)
		}
	}
	return nil
}

// opArgs is the number of apply.lua arguments per op, and resultVals the number of
// values it returns per op.
const (
	opArgs     = 14
	resultVals = 8
)

// group collects the keys and arguments of one apply.lua call.
type group struct {
	keys  []string
	pos   map[string]int // key -> its 1-based position in keys
	args  []any
	ops   []int // the batch positions of the group's ops, in order
	known bool  // cluster: the content exists after the call
}

func (g *group) reset(header ...any) {
	g.keys = g.keys[:0]
	if g.pos == nil {
		g.pos = make(map[string]int)
	}
	clear(g.pos)
	g.args = append(g.args[:0], header...)
	g.ops = g.ops[:0]
	g.known = false
}

func (g *group) key(k string) int {
	if i, ok := g.pos[k]; ok {
		return i
	}
	g.keys = append(g.keys, k)
	g.pos[k] = len(g.keys)
	return len(g.keys)
}

// applyBuf holds the writer's reusable buffers.
type applyBuf struct {
	tags   map[string]string // content -> hash tag, for one batch
	groups []*group
	byTag  map[string]*group
	calls  []scriptCall
	res    []opResult
}

func (b *applyBuf) tag(k keys, contentID string) string {
	if b.tags == nil {
		b.tags = make(map[string]string)
	}
	t, ok := b.tags[contentID]
	if !ok {
		t = k.tag(contentID)
		b.tags[contentID] = t
	}
	return t
}

// opResult is apply.lua's outcome of one op.
type opResult struct {
	store.Result
	version string // the content's version after the op (cluster)
	member  bool   // the user holds the reaction after the op
	known   bool   // the content exists after the op (cluster)
}

// addOp appends ops[i] to g; withIndexes adds the index keys too (all keys on one server).
func (s *Store) addOp(g *group, ops []store.Op, i int, withIndexes bool) {
	op := &ops[i]
	tag := s.buf.tag(s.k, op.ContentID)
	r := op.ReactionType
	ku, kc := 0, 0
	if withIndexes {
		ku, kc = g.key(s.k.user(op.UserID)), g.key(s.k.contents())
	}
	g.args = append(g.args,
		op.ContentID, r, op.UserID,
		strconv.Itoa(int(op.Action)), strconv.FormatInt(op.TS, 10), strconv.FormatInt(op.ExpiresAt, 10),
		g.key(s.k.content(tag, kindCounts)), g.key(s.k.content(tag, kindVersion)),
		g.key(s.k.set(tag, kindMembers, r)), g.key(s.k.set(tag, kindExpiry, r)),
		g.key(s.k.set(tag, kindTS, r)), g.key(s.k.set(tag, kindTomb, r)),
		ku, kc)
	g.ops = append(g.ops, i)
}

// Apply implements store.Store. Each op's outcome, LWW included, is decided by a Lua
// script on the server holding its content. In single and sentinel mode the whole
// batch is one script call: one round trip, all or nothing. In cluster mode each
// content's ops are one script call, the calls go in one pipeline (one round trip per
// node, in parallel), and a second pipeline updates the user and contents indexes.
// See "Failed batches" in docs/SCALE-OUT.md for what an error leaves behind.
func (s *Store) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(out) < len(ops) {
		return fmt.Errorf("redis: apply: %d results for %d ops", len(out), len(ops))
	}
	if len(ops) == 0 {
		return nil
	}
	for i := range ops {
		if err := checkOp(&ops[i]); err != nil {
			return fmt.Errorf("redis: apply: op %d: %w", i, err)
		}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	defer clear(s.buf.tags)
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	s.stats.applies.Add(1)
	s.stats.ops.Add(int64(len(ops)))
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	var trips int
	var err error
	if s.split {
		trips, err = s.applySplit(ctx, ops, out, now)
	} else {
		trips, err = s.applyAll(ctx, ops, out, now)
	}
	s.stats.roundTrips.Add(int64(trips))
	if err != nil {
		s.stats.applyErrors.Add(1)
		return s.wrap(err, "applying batch of %d ops", len(ops))
	}
	s.setHealthy(nil)
	return nil
}

func (s *Store) header(now, indexes string) []any {
	return []any{s.node, now, s.k.channel(), indexes}
}

// applyAll applies the batch with one script call holding every key.
func (s *Store) applyAll(ctx context.Context, ops []store.Op, out []store.Result, now string) (int, error) {
	g := s.groupAt(0)
	g.reset(s.header(now, "1")...)
	for i := range ops {
		s.addOp(g, ops, i, true)
	}
	calls := append(s.buf.calls[:0], scriptCall{script: scriptApply, keys: g.keys, args: g.args})
	defer func() { clear(calls); s.buf.calls = calls[:0] }()
	trips, err := s.runScripts(ctx, calls, nil)
	if err != nil {
		return trips, err
	}
	res, err := s.results(calls[0].cmd, len(ops))
	if err != nil {
		return trips, err
	}
	for i := range ops {
		out[i] = res[i].Result
	}
	return trips, nil
}

func (s *Store) groupAt(i int) *group {
	for len(s.buf.groups) <= i {
		s.buf.groups = append(s.buf.groups, &group{})
	}
	return s.buf.groups[i]
}

// applySplit applies the batch in cluster mode: one script call per content, then
// the index updates.
func (s *Store) applySplit(ctx context.Context, ops []store.Op, out []store.Result, now string) (int, error) {
	if s.buf.byTag == nil {
		s.buf.byTag = make(map[string]*group)
	}
	byTag := s.buf.byTag
	defer clear(byTag)
	var groups []*group
	for i := range ops {
		tag := s.buf.tag(s.k, ops[i].ContentID)
		g := byTag[tag]
		if g == nil {
			g = s.groupAt(len(groups))
			g.reset(s.header(now, "0")...)
			byTag[tag] = g
			groups = append(groups, g)
		}
		s.addOp(g, ops, i, false)
	}
	calls := s.buf.calls[:0]
	for _, g := range groups {
		calls = append(calls, scriptCall{script: scriptApply, keys: g.keys, args: g.args})
	}
	defer func() { clear(calls); s.buf.calls = calls[:0] }()
	trips, err := s.runScripts(ctx, calls, nil)
	if err != nil {
		return trips, err
	}
	res := s.buf.res[:0]
	if cap(res) < len(ops) {
		res = make([]opResult, len(ops))
	}
	res = res[:len(ops)]
	defer func() { clear(res); s.buf.res = res[:0] }()
	for gi, g := range groups {
		r, err := s.results(calls[gi].cmd, len(g.ops))
		if err != nil {
			return trips, err
		}
		for j, i := range g.ops {
			res[i] = r[j]
			out[i] = r[j].Result
			g.known = g.known || r[j].known
		}
	}
	more, err := s.writeIndexes(ctx, ops, res, groups, now)
	return trips + more, err
}

// writeIndexes records, in cluster mode, the state of every op's membership in its
// user's index (as of the content version the script returned: see index.lua) and
// the batch's contents in the contents index. It runs for unchanged and stale ops
// too, which repairs the indexes when a failed batch is sent again.
func (s *Store) writeIndexes(ctx context.Context, ops []store.Op, res []opResult, groups []*group, now string) (int, error) {
	byUser := make(map[string]int) // user index key -> position in calls
	var calls []scriptCall
	for i := range ops {
		r := &res[i]
		state, n := "t", now
		switch {
		case r.member:
			state, n = "m", strconv.FormatInt(r.Expiry, 10)
		case r.Changed:
			state = "T"
		}
		key := s.k.user(ops[i].UserID)
		ci, ok := byUser[key]
		if !ok {
			ci = len(calls)
			byUser[key] = ci
			calls = append(calls, scriptCall{script: scriptIndex, keys: []string{key}})
		}
		calls[ci].args = append(calls[ci].args, membershipField(ops[i].ContentID, ops[i].ReactionType), r.version, state, n)
	}
	var members []goredis.Z
	for _, g := range groups {
		if g.known {
			members = append(members, goredis.Z{Member: ops[g.ops[0]].ContentID})
		}
	}
	var extra func(goredis.Pipeliner) []goredis.Cmder
	if len(members) > 0 {
		extra = func(p goredis.Pipeliner) []goredis.Cmder {
			return []goredis.Cmder{p.ZAdd(ctx, s.k.contents(), members...)}
		}
	}
	trips, err := s.runScripts(ctx, calls, extra)
	if err != nil {
		return trips, fmt.Errorf("updating the indexes (the ops were applied): %w", err)
	}
	return trips, nil
}

// results decodes apply.lua's reply for n ops.
func (s *Store) results(cmd *goredis.Cmd, n int) ([]opResult, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) != n*resultVals {
		return nil, fmt.Errorf("apply script returned %d values for %d ops", len(vals), n)
	}
	res := make([]opResult, n)
	for i := range res {
		v := vals[i*resultVals : (i+1)*resultVals]
		var nums [5]int64
		for j := range nums {
			if nums[j], err = asInt(v[j]); err != nil {
				return nil, fmt.Errorf("apply script result %d: %w", i, err)
			}
		}
		member, err1 := asInt(v[6])
		known, err2 := asInt(v[7])
		version, ok := v[5].(string)
		if err := errors.Join(err1, err2); err != nil || !ok {
			return nil, fmt.Errorf("apply script result %d: bad flags %v", i, v[5:])
		}
		res[i] = opResult{
			Result:  store.Result{Changed: nums[0] == 1, Count: nums[1], Expiry: nums[2], PrevExpiry: nums[3], Stale: nums[4] == 1},
			version: version, member: member == 1, known: known == 1,
		}
	}
	return res, nil
}

// asInt reads an integer from a script reply, sent as an integer or as text.
func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T in script reply", v)
}

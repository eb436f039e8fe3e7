package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/prelude.lua
	luaPrelude string
	//go:embed lua/apply.lua
	luaApply string
	//go:embed lua/index.lua
	luaIndex string
	//go:embed lua/members.lua
	luaMembers string
	//go:embed lua/purge.lua
	luaPurge string
	//go:embed lua/purgeindex.lua
	luaPurgeIndex string
)

// The server-side scripts; each is loaded at Open and run with EVALSHA. They are
// package-level values only because they are immutable after init.
var (
	scriptApply      = goredis.NewScript(luaPrelude + luaApply)
	scriptIndex      = goredis.NewScript(luaPrelude + luaIndex)
	scriptMembers    = goredis.NewScript(luaMembers)
	scriptPurge      = goredis.NewScript(luaPurge)
	scriptPurgeIndex = goredis.NewScript(luaPrelude + luaPurgeIndex)

	allScripts = []*goredis.Script{scriptApply, scriptIndex, scriptMembers, scriptPurge, scriptPurgeIndex}
)

// loadScripts loads every script into the script cache (of every master, in cluster
// mode), so that EVALSHA finds them.
func (s *Store) loadScripts(ctx context.Context) error {
	for _, sc := range allScripts {
		if err := sc.Load(ctx, s.c).Err(); err != nil {
			return fmt.Errorf("loading scripts: %w", err)
		}
	}
	return nil
}

// scriptCall is one EVALSHA queued in a pipeline.
type scriptCall struct {
	script *goredis.Script
	keys   []string
	args   []any
	cmd    *goredis.Cmd
}

// runScripts sends calls, and whatever extra queues, in one pipeline: one round trip
// (in cluster mode, one per node, in parallel). Calls refused with NOSCRIPT (the
// server restarted or its script cache was flushed; a refused call did not run) are
// sent once more after loading the scripts. It returns how many round trips it made
// and the first error of any command.
func (s *Store) runScripts(ctx context.Context, calls []scriptCall, extra func(goredis.Pipeliner) []goredis.Cmder) (int, error) {
	if len(calls) == 0 && extra == nil {
		return 0, nil
	}
	pipe := s.c.Pipeline()
	for i := range calls {
		c := &calls[i]
		c.cmd = pipe.EvalSha(ctx, c.script.Hash(), c.keys, c.args...)
	}
	var others []goredis.Cmder
	if extra != nil {
		others = extra(pipe)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	trips := 1

	var again []int
	for i := range calls {
		if isNoScript(calls[i].cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		s.stats.scriptLoads.Add(1)
		trips += len(allScripts)
		if err := s.loadScripts(ctx); err != nil {
			return trips, err
		}
		pipe := s.c.Pipeline()
		for _, i := range again {
			c := &calls[i]
			c.cmd = pipe.EvalSha(ctx, c.script.Hash(), c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx)
		trips++
	}
	for i := range calls {
		if err := calls[i].cmd.Err(); err != nil {
			return trips, err
		}
	}
	for _, c := range others {
		if err := c.Err(); err != nil {
			return trips, err
		}
	}
	return trips, nil
}

// runScript runs one script outside a pipeline, loading the scripts on NOSCRIPT.
func (s *Store) runScript(ctx context.Context, sc *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	cmd := sc.EvalSha(ctx, s.c, keys, args...)
	if isNoScript(cmd.Err()) {
		if err := s.loadScripts(ctx); err != nil {
			c := goredis.NewCmd(ctx)
			c.SetErr(err)
			return c
		}
		cmd = sc.EvalSha(ctx, s.c, keys, args...)
	}
	return cmd
}

func isNoScript(err error) bool {
	return err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT")
}

// isReply reports whether err is an error reply from Redis (Redis was reached), as
// opposed to a network or timeout error.
func isReply(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed)
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/arina-dev/arina/store"
)

// feedVersion is the first field of every change feed message.
const feedVersion = "1"

// Feed message format (written by apply.lua): a sequence of fields, each written as
// its length in bytes, ':', then its bytes:
//
//	version ("1"), node id, at (unix ms),
//	then per change: content, reaction, user, action (1, 2, 3), count, expires_at.
//
// Length prefixes keep any byte in an identifier unambiguous.

// errFeedMessage is wrapped by every decoding error.
var errFeedMessage = errors.New("malformed change feed message")

// decodeMessage decodes a change feed message.
func decodeMessage(p string) (node string, changes []store.Change, err error) {
	var fields []string
	for len(p) > 0 {
		n, rest, ok := strings.Cut(p, ":")
		if !ok || len(n) == 0 || len(n) > 10 {
			return "", nil, fmt.Errorf("%w: bad field length", errFeedMessage)
		}
		size, err := strconv.Atoi(n)
		if err != nil || size < 0 || size > len(rest) {
			return "", nil, fmt.Errorf("%w: bad field length %q", errFeedMessage, n)
		}
		fields = append(fields, rest[:size])
		p = rest[size:]
	}
	if len(fields) < 3 || fields[0] != feedVersion || (len(fields)-3)%6 != 0 {
		return "", nil, fmt.Errorf("%w: %d fields", errFeedMessage, len(fields))
	}
	at, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		return "", nil, fmt.Errorf("%w: at: %w", errFeedMessage, err)
	}
	changes = make([]store.Change, 0, (len(fields)-3)/6)
	for f := fields[3:]; len(f) > 0; f = f[6:] {
		act, err := strconv.ParseUint(f[3], 10, 8)
		if err != nil || store.Action(act) < store.Add || store.Action(act) > store.Expire {
			return "", nil, fmt.Errorf("%w: action %q", errFeedMessage, f[3])
		}
		count, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("%w: count: %w", errFeedMessage, err)
		}
		exp, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("%w: expires_at: %w", errFeedMessage, err)
		}
		changes = append(changes, store.Change{ContentID: f[0], ReactionType: f[1], UserID: f[2],
			Action: store.Action(act), Count: count, At: at, ExpiresAt: exp})
	}
	return fields[1], changes, nil
}

// Bounds of the wait between attempts to reach Redis again after the feed's
// connection failed.
const (
	feedMinBackoff = 50 * time.Millisecond
	feedMaxBackoff = 2 * time.Second
)

// follow receives the change feed until ctx ends, handing other nodes' changes to
// onChange. go-redis reconnects and subscribes again after an error; what was
// published meanwhile is lost (see "Change feed" in docs/SCALE-OUT.md). confirmed
// says whether Follow took the subscription's first confirmation (it does unless
// Redis was unreachable).
func (s *Store) follow(ctx context.Context, ps *goredis.PubSub, confirmed bool, onChange func([]store.Change)) {
	backoff := feedMinBackoff
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for {
		msg, err := ps.ReceiveTimeout(ctx, 5*s.opts.HealthInterval)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet: make sure the connection is alive (an error here makes
				// go-redis reconnect at the next receive).
				_ = ps.Ping(ctx)
				continue
			}
			s.stats.feedErrors.Add(1)
			timer.Reset(backoff)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			backoff = min(2*backoff, feedMaxBackoff)
			continue
		}
		backoff = feedMinBackoff
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && !confirmed {
				// Open could not reach Redis: this is the first subscription.
				confirmed = true
				s.log.Info("change feed subscribed")
			} else if m.Kind == "subscribe" {
				// Open took the first confirmation: this one follows a reconnection.
				s.stats.feedResubscribes.Add(1)
				s.log.Info("change feed subscribed again; changes other nodes published meanwhile were missed by this node's live feed (queries are unaffected)")
			}
		case *goredis.Message:
			s.deliver(m.Payload, onChange)
		}
	}
}

// deliver decodes one feed message and hands its changes to onChange unless this
// node sent it.
func (s *Store) deliver(payload string, onChange func([]store.Change)) {
	node, changes, err := decodeMessage(payload)
	if err != nil {
		s.stats.feedUndecodable.Add(1)
		s.log.Debug("ignoring change feed message", "err", err, "bytes", len(payload))
		return
	}
	if node == s.node || len(changes) == 0 {
		return
	}
	s.stats.remoteChanges.Add(int64(len(changes)))
	onChange(changes)
}

// Follow subscribes to the change feed and hands the changes other nodes apply to
// onChange as they arrive (at most once: see "Change feed" in docs/SCALE-OUT.md),
// from one goroutine, in arrival order; onChange must not block for long: the feed
// waits for it. When Redis answers, Follow returns once subscribed, so every change
// applied after it returns reaches onChange; when Redis cannot be reached yet
// (Options.StartUnreachable) it subscribes once Redis answers. Call it once, before
// Close.
func (s *Store) Follow(ctx context.Context, onChange func([]store.Change)) error {
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	switch {
	case s.closed.Load():
		return store.ErrClosed
	case s.ps != nil:
		return errors.New("redis: Follow called twice")
	}
	octx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	ps := s.c.Subscribe(octx, s.k.channel())
	reached := s.reached.Load()
	if reached {
		// Wait for the confirmation, so that changes applied after Follow returns
		// reach onChange.
		if _, err := ps.ReceiveTimeout(octx, s.opts.Timeout); err != nil {
			return errors.Join(fmt.Errorf("redis: subscribing to %s: %w", s.k.channel(), err), ps.Close())
		}
	}
	// Unreachable: go-redis subscribes when follow's first receive connects.
	s.ps = ps
	s.wg.Go(func() { s.follow(s.bg, ps, reached, onChange) })
	return nil
}

// Package redis is a store.Store kept in Redis (one server, Sentinel or Cluster), so
// that several Arina nodes share one state, and a change feed on Redis pub/sub that
// lets every node's live outputs (SSE, count topics) see every node's changes.
//
// # Key layout
//
// Every key starts with Options.KeyPrefix, P (default "arina:"; no '{' or '}', and no
// deployment's prefix may start with another's). A content's keys share the hash tag
// T = "{" + base64url(content id) + "}" (unpadded, so neither '{' nor '}' appears in
// it: a content id may hold any character and its keys still land in one cluster
// slot). For a content c with reaction r:
//
//	P T :n     hash        r -> number of members (a reaction whose users all left stays, at 0)
//	P T :v     string      the content's version: counts changes of its memberships (cluster mode)
//	P T :m:r   sorted set  the members, all with score 0, so ZRANGEBYLEX pages them in user id order
//	P T :x:r   hash        user -> expiry (unix ms), for members with an expiry only
//	P T :t:r   hash        user -> remembered TS (store.Op.TS), for members and tombstones
//	P T :d:r   sorted set  user -> remembered TS as score, for tombstones only (removed users
//	                       whose TS is remembered), so PurgeTombstones finds old ones by score
//
// And three things not tied to one content, each in its own slot in cluster mode:
//
//	P contents     sorted set  every content id (score 0): Contents pages it with ZRANGEBYLEX
//	P u: <user>    hash        content NUL reaction -> "<version> m <expiry>" for each membership
//	                           of the user; in cluster mode also "<version> t <unix ms>" for one
//	                           that ended, until PurgeTombstones deletes it
//	P changes      pub/sub channel of the change feed
//
// A content exists (Counts does not return store.ErrNotFound) when its counts hash
// does, that is once an add was applied to it; a timestamped remove of a content
// never held leaves only a tombstone, which no query shows.
//
// # Scripts
//
// Every mutation runs in Lua scripts on the server (EVALSHA; loaded at Open, or when
// Redis first answers if Options.StartUnreachable let Open return without it, and
// loaded again when a server answers NOSCRIPT after a restart), so that each op's outcome,
// its last-writer-wins check (store.Op.TS) and the counts are decided atomically
// where the data is:
//
//   - apply.lua applies a sequence of ops in order and returns each op's
//     store.Result; it publishes the changes it made as one feed message. Timestamps
//     and expiries are compared as decimal text, so the whole int64 range is exact
//     (Lua numbers are doubles).
//   - index.lua (cluster mode) records the state of memberships in a user's index, as
//     of a content version, keeping the newest.
//   - members.lua reads a page of members with their expiries in one step.
//   - purge.lua and purgeindex.lua forget old tombstones.
//
// # Round trips
//
// In single and sentinel mode an Apply is one apply.lua call holding the whole batch
// and every key it touches, indexes included: one round trip, and the batch is atomic
// (other nodes and readers see all of it or none of it).
//
// In cluster mode a batch's contents are spread over slots and one script may only
// touch one slot. Apply groups the ops by content, in batch order within each
// content (ops on different contents do not affect each other, so only the order per
// content matters), and sends one apply.lua call per content in one pipeline: go-redis
// splits it by node and sends the parts in parallel. Each content's ops are atomic; the
// batch as a whole is not. The user indexes and the contents index live in other slots,
// and what to write there depends on the scripts' outcome, so a second pipeline
// follows: one index.lua call per user of the batch plus one ZADD of the batch's
// contents. So two round trips per batch. Because several nodes may write one user's
// index in any order, each entry carries the content version at which the script saw
// it, and index.lua keeps the newest; entries for removed memberships stay as
// tombstones (so that a late, older write cannot bring them back) until
// PurgeTombstones deletes those older than its bound. In single mode apply.lua writes
// the indexes itself and simply deletes ended memberships.
//
// Stats.RoundTrips and the arina_redis_apply_round_trips_total metric count them; see
// BenchmarkStore_Apply for figures.
//
// # Failed batches
//
// Redis cannot undo a write, and a client cannot tell whether a request whose reply it
// never received was executed, so Apply cannot keep store.Store's promise that a
// failed batch applied nothing. What an error from Apply may have left:
//
//   - An op refused before sending (invalid op, too few results, store closed):
//     nothing was applied.
//   - Single and sentinel mode, Redis unreachable, timeout or connection lost: the
//     script ran entirely (every op applied, the feed message published) or not at
//     all; never part of it. (The one exception is a runtime error inside the script,
//     such as a key of a foreign type under our prefix: Redis keeps the writes made
//     before it.)
//   - Cluster mode: any subset of the per-content groups may have been applied, each
//     group entirely or not at all; and when the error is in the second pipeline, every
//     op was applied but some user index entries or the contents index may lag.
//
// A retry of the same batch is harmless and repairs any of these: adds and removes
// are idempotent (an add of a member or a remove of a non-member changes nothing),
// timestamped ops are decided by last-writer-wins whatever arrived before, and in
// cluster mode every op, changed or not, rewrites its user index entry with the current
// state. So the ingest writer refuses the batch's events and the clients' redelivery
// (MQTT QoS1, HTTP retry) converges. What a retry does not restore is the results:
// ops that the failed attempt did apply come back unchanged (Changed false, or Stale),
// so their changes are missing from this node's local feed (other nodes got them on
// the change feed). For the same reason the client is set to send nothing twice by
// itself (go-redis retries are off); in cluster mode go-redis still resends a
// pipeline to a node after a connection error within its redirect budget, with that
// same effect on results and nothing worse.
//
// Untimestamped ops (TS 0) apply in arrival order: a retried remove that arrives after
// another node's newer add of the same member removes it. Timestamps avoid that.
//
// # Faults
//
// Every Apply, query and health check is bounded by Options.Timeout (default 5s), with
// connection and I/O timeouts below it, so a dead or hung Redis makes them fail within
// seconds instead of holding the writer. Errors that mean Redis was not reached wrap
// store.ErrUnavailable. Healthy turns false at such an error and is checked by a PING
// every Options.HealthInterval (every master in cluster mode); when Redis answers
// again it turns true and the scripts are loaded again (a restarted server has lost
// them). go-redis reconnects by itself; no connection, script or subscription stays
// broken. Expiring SCANs (never KEYS) every server and, having no error result, logs
// a failure.
//
// # Change feed
//
// After applying ops, apply.lua publishes the changes it made on the channel
// P+"changes", in the same step: one message per Apply in single mode, one per content
// group in cluster mode (PUBLISH reaches subscribers on every cluster node). A message
// carries the id of the node that sent it (random, made at Open) and the send time;
// the format is in feed.go. Follow subscribes, and a goroutine (stopped by Close)
// decodes each message from another node and hands its changes (store.Change values)
// to the function Follow was given, in the order they were published.
//
// Redis pub/sub delivers at most once: a node whose subscription drops (Redis restart,
// network fault, a subscriber too slow for the server's output buffer limit) misses
// what is published until go-redis has subscribed again, and it is not told what it
// missed. This affects only its live outputs (SSE, retained count topics) for those
// changes; its queries read Redis and stay right, and the next change to a content
// publishes its current count again. The store logs each resubscription and counts it
// in Stats.FeedResubscribes.
package redis

// Package redis is a store.Store kept in Redis (one server, Sentinel or Cluster), so
// that several Arina nodes share one state, and a change feed on Redis pub/sub that
// lets every node's live outputs (SSE, count topics) see every node's changes.
//
// The design (key layout, scripts, round trips, failed batches, faults and the change
// feed) is in docs/SCALE-OUT.md, "Design of the Redis store".
package redis

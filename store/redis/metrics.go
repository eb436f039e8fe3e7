package redis

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the store's running totals.
type counters struct {
	applies          atomic.Int64
	applyErrors      atomic.Int64
	ops              atomic.Int64
	roundTrips       atomic.Int64
	scriptLoads      atomic.Int64
	remoteChanges    atomic.Int64
	feedUndecodable  atomic.Int64
	feedErrors       atomic.Int64
	feedResubscribes atomic.Int64
}

// Stats are totals since Open.
type Stats struct {
	Applies     int64 // Apply calls with at least one op
	ApplyErrors int64 // of which failed
	Ops         int64 // ops passed to those calls
	// RoundTrips counts the request/response exchanges Apply waited for, one after the
	// other: one per batch in single and sentinel mode, two in cluster mode (where each
	// exchange is a pipeline sent to every node concerned at once), plus the script
	// reloads after a server lost its script cache.
	RoundTrips       int64
	ScriptLoads      int64 // times Apply found the scripts missing and loaded them
	RemoteChanges    int64 // changes of other nodes handed to Follow's function
	FeedUndecodable  int64 // change feed messages ignored as malformed
	FeedErrors       int64 // failed receives on the change feed (Redis unreachable)
	FeedResubscribes int64 // subscriptions renewed after a lost connection: changes may have been missed
}

// Stats returns the totals since Open.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		Applies: c.applies.Load(), ApplyErrors: c.applyErrors.Load(), Ops: c.ops.Load(),
		RoundTrips: c.roundTrips.Load(), ScriptLoads: c.scriptLoads.Load(),
		RemoteChanges: c.remoteChanges.Load(), FeedUndecodable: c.feedUndecodable.Load(),
		FeedErrors: c.feedErrors.Load(), FeedResubscribes: c.feedResubscribes.Load(),
	}
}

var (
	descUp = prometheus.NewDesc("arina_redis_up",
		"Whether Redis answered the last health check (1) or not (0).", nil, nil)
	descApplies = prometheus.NewDesc("arina_redis_applies_total",
		"Batches applied to Redis, by outcome.", []string{"outcome"}, nil)
	descOps = prometheus.NewDesc("arina_redis_apply_ops_total",
		"Ops in the batches applied to Redis.", nil, nil)
	descRoundTrips = prometheus.NewDesc("arina_redis_apply_round_trips_total",
		"Sequential round trips to Redis made by Apply; divide by arina_redis_applies_total for round trips per batch.", nil, nil)
	descScriptLoads = prometheus.NewDesc("arina_redis_script_loads_total",
		"Times Apply found its scripts missing on a server (after a restart) and loaded them.", nil, nil)
	descRemote = prometheus.NewDesc("arina_redis_remote_changes_total",
		"Changes applied by other nodes received on the change feed.", nil, nil)
	descFeedBad = prometheus.NewDesc("arina_redis_feed_undecodable_total",
		"Change feed messages ignored as malformed.", nil, nil)
	descFeedErrors = prometheus.NewDesc("arina_redis_feed_errors_total",
		"Failed receives on the change feed.", nil, nil)
	descResub = prometheus.NewDesc("arina_redis_feed_resubscribes_total",
		"Change feed subscriptions renewed after a lost connection (changes published meanwhile were missed by the live feed).", nil, nil)
)

// Describe implements prometheus.Collector, so that the daemon can register a Store.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descApplies, descOps, descRoundTrips, descScriptLoads,
		descRemote, descFeedBad, descFeedErrors, descResub} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	up := 0.0
	if s.Healthy() {
		up = 1
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	counter(descApplies, st.Applies-st.ApplyErrors, "ok")
	counter(descApplies, st.ApplyErrors, "error")
	counter(descOps, st.Ops)
	counter(descRoundTrips, st.RoundTrips)
	counter(descScriptLoads, st.ScriptLoads)
	counter(descRemote, st.RemoteChanges)
	counter(descFeedBad, st.FeedUndecodable)
	counter(descFeedErrors, st.FeedErrors)
	counter(descResub, st.FeedResubscribes)
}

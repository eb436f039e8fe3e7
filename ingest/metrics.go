package ingest

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/store"
)

type metrics struct {
	received     [numSources]prometheus.Counter
	applied      [numSources]prometheus.Counter
	stale        [numSources]prometheus.Counter
	rejectedVec  *prometheus.CounterVec
	changed      map[store.Action]prometheus.Counter
	batchSize    prometheus.Histogram
	applySeconds prometheus.Histogram

	expiredVec *prometheus.CounterVec

	mu        sync.Mutex
	rejectedC map[rejectKey]prometheus.Counter
	expiredC  map[string]prometheus.Counter // by reaction type; bounded like the TTL cache
}

type rejectKey struct {
	src  Source
	code Code
}

func newMetrics(reg prometheus.Registerer, w *Writer) (*metrics, error) {
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_events_received_total",
		Help: "Events received at the edge (MQTT ingest topics, HTTP), valid or not.",
	}, []string{"source"})
	applied := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_events_applied_total",
		Help: "Events applied to the store by the writer, stale ones included.",
	}, []string{"source"})
	stale := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_events_stale_total",
		Help: "Applied events that changed nothing because a newer event (by ts) for the same content, reaction and user had been applied, or because their ts was older than the tombstone TTL.",
	}, []string{"source"})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_events_rejected_total",
		Help: "Events not applied, by source and reason.",
	}, []string{"source", "reason"})
	changed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_memberships_changed_total",
		Help: "Applied events that changed a set (adds of new members, removes of present ones).",
	}, []string{"action"})
	expired := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_memberships_expired_total",
		Help: "Memberships removed because their reaction's TTL passed without a refresh.",
	}, []string{"reaction"})
	m := &metrics{
		rejectedVec: rejected,
		expiredVec:  expired,
		expiredC:    make(map[string]prometheus.Counter),
		changed: map[store.Action]prometheus.Counter{
			store.Add:    changed.WithLabelValues("add"),
			store.Remove: changed.WithLabelValues("remove"),
		},
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arina_ingest_batch_size",
			Help:    "Events per writer batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "arina_ingest_apply_seconds",
			Help:    "Time to apply one writer batch to the store.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}),
		rejectedC: make(map[rejectKey]prometheus.Counter),
	}
	for s := range numSources {
		m.received[s] = received.WithLabelValues(s.String())
		m.applied[s] = applied.WithLabelValues(s.String())
		m.stale[s] = stale.WithLabelValues(s.String())
	}
	if reg == nil {
		return m, nil
	}
	queueLen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "arina_ingest_queue_length",
		Help: "Events waiting in the ingest queue.",
	}, func() float64 { return float64(w.QueueLen()) })
	queueCap := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "arina_ingest_queue_capacity",
		Help: "Capacity of the ingest queue (ingest.queue_size).",
	}, func() float64 { return float64(cap(w.ch)) })
	var errs []error
	for _, c := range []prometheus.Collector{received, applied, stale, rejected, changed, expired, m.batchSize, m.applySeconds, queueLen, queueCap} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// rejected returns the counter of one (source, reason); lookups are cached so the
// label hashing happens once per pair.
func (m *metrics) rejected(src Source, code Code) prometheus.Counter {
	k := rejectKey{src, code}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.rejectedC[k]
	if !ok {
		c = m.rejectedVec.WithLabelValues(src.String(), string(code))
		m.rejectedC[k] = c
	}
	return c
}

// expired returns the expiry counter of one reaction type.
func (m *metrics) expired(reactionType string) prometheus.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.expiredC[reactionType]
	if !ok {
		if len(m.expiredC) >= maxTTLCache {
			clear(m.expiredC)
		}
		c = m.expiredVec.WithLabelValues(reactionType)
		m.expiredC[reactionType] = c
	}
	return c
}

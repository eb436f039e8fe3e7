package sparkplug

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of arina_sparkplug_metrics_ignored_total.
const (
	ignoredUnknownAlias = "unknown_alias"  // an alias no birth declared (arina missed the birth)
	ignoredHistorical   = "historical"     // is_historical: not the current value
	ignoredRule         = "rule"           // a rule with ignore: true
	ignoredNotReaction  = "not_a_reaction" // no rule, and the name cannot be a reaction type
	ignoredNotBoolean   = "not_boolean"    // a device rule (or the default) on a non-Boolean value
	ignoredNotUser      = "not_a_user"     // a value rule on a value that is not a string or integer
)

type metrics struct {
	messagesVec *prometheus.CounterVec
	ignoredVec  *prometheus.CounterVec
	seqGaps     prometheus.Counter
	staleDeaths prometheus.Counter

	mu    sync.Mutex
	cache map[string]prometheus.Counter // "m"+type or "i"+reason; both sets are small and fixed
}

func newMetrics(reg prometheus.Registerer, d *Decoder) (*metrics, error) {
	m := &metrics{
		messagesVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_sparkplug_messages_total",
			Help: "Sparkplug B messages decoded, by type (NBIRTH, DDATA, ...).",
		}, []string{"type"}),
		ignoredVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_sparkplug_metrics_ignored_total",
			Help: "Sparkplug B metrics that are not memberships, by reason.",
		}, []string{"reason"}),
		seqGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arina_sparkplug_seq_gaps_total",
			Help: "Sparkplug B messages whose seq was not the one after the edge node's previous message.",
		}),
		staleDeaths: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arina_sparkplug_stale_deaths_total",
			Help: "NDEATH messages ignored because their bdSeq is not that of the node's last NBIRTH.",
		}),
		cache: map[string]prometheus.Counter{},
	}
	if reg == nil {
		return m, nil
	}
	nodes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "arina_sparkplug_edge_nodes",
		Help: "Sparkplug B edge nodes whose state arina remembers.",
	}, func() float64 { return float64(d.Nodes()) })
	var errs []error
	for _, c := range []prometheus.Collector{m.messagesVec, m.ignoredVec, m.seqGaps, m.staleDeaths, nodes} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

func (m *metrics) counter(vec *prometheus.CounterVec, kind, label string) prometheus.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cache[kind+label]
	if !ok {
		c = vec.WithLabelValues(label)
		m.cache[kind+label] = c
	}
	return c
}

func (m *metrics) messages(typ string) prometheus.Counter { return m.counter(m.messagesVec, "m", typ) }
func (m *metrics) ignored(reason string) prometheus.Counter {
	return m.counter(m.ignoredVec, "i", reason)
}

package sparkplug

import (
	"errors"

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
	messages    map[string]prometheus.Counter // by message type; read-only after newMetrics
	messagesVec *prometheus.CounterVec
	ignoredVec  *prometheus.CounterVec
	seqGaps     prometheus.Counter
	staleDeaths prometheus.Counter
	ignoredC    map[string]prometheus.Counter // by reason; read-only after newMetrics
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
		messages: map[string]prometheus.Counter{},
		ignoredC: map[string]prometheus.Counter{},
	}
	for _, r := range []string{ignoredUnknownAlias, ignoredHistorical, ignoredRule, ignoredNotReaction, ignoredNotBoolean, ignoredNotUser} {
		m.ignoredC[r] = m.ignoredVec.WithLabelValues(r)
	}
	for _, typ := range []string{NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA} {
		m.messages[typ] = m.messagesVec.WithLabelValues(typ)
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

func (m *metrics) ignored(reason string) prometheus.Counter { return m.ignoredC[reason] }

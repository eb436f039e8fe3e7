package durable

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The engine's state, for operators: how far compaction lags behind ingest, and
// whether writes ever stalled on it (see Open for the L0 thresholds).
var (
	descL0Sublevels = prometheus.NewDesc("arina_store_engine_l0_sublevels",
		"Sublevels in the storage engine's level 0: compaction starts at 16, writes stop at 64.", nil, nil)
	descL0Tables = prometheus.NewDesc("arina_store_engine_l0_tables",
		"Tables (files) in the storage engine's level 0.", nil, nil)
	descDebt = prometheus.NewDesc("arina_store_engine_compaction_debt_bytes",
		"The storage engine's estimate of the bytes still to compact for its levels to be in shape.", nil, nil)
	descCompactions = prometheus.NewDesc("arina_store_engine_compactions_total",
		"Compactions the storage engine has run since start.", nil, nil)
	descFlushes = prometheus.NewDesc("arina_store_engine_flushes_total",
		"Memtable flushes the storage engine has run since start.", nil, nil)
	descStalls = prometheus.NewDesc("arina_store_engine_write_stalls_total",
		"Times the storage engine held writes back until compactions or flushes caught up.", nil, nil)
	descStallSeconds = prometheus.NewDesc("arina_store_engine_write_stall_seconds_total",
		"Time writes were held back by the storage engine (stalls that ended).", nil, nil)
	descDiskBytes = prometheus.NewDesc("arina_store_engine_disk_bytes",
		"Disk space the storage engine uses in the data directory.", nil, nil)
)

var _ prometheus.Collector = (*Store)(nil)

// Describe implements prometheus.Collector.
func (d *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{descL0Sublevels, descL0Tables, descDebt, descCompactions,
		descFlushes, descStalls, descStallSeconds, descDiskBytes} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector. After Close it reports nothing.
func (d *Store) Collect(ch chan<- prometheus.Metric) {
	d.metricsMu.Lock()
	defer d.metricsMu.Unlock()
	if d.dbClosed {
		return
	}
	m := d.db.Metrics()
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	gauge(descL0Sublevels, float64(m.Levels[0].Sublevels))
	gauge(descL0Tables, float64(m.Levels[0].TablesCount))
	gauge(descDebt, float64(m.Compact.EstimatedDebt))
	counter(descCompactions, float64(m.Compact.Count))
	counter(descFlushes, float64(m.Flush.Count))
	counter(descStalls, float64(d.stalls.Load()))
	counter(descStallSeconds, time.Duration(d.stallNanos.Load()).Seconds())
	gauge(descDiskBytes, float64(m.DiskSpaceUsage()))
}

// events counts and logs the engine's write stalls: with the L0 thresholds raised, a
// stall would come later than with Pebble's defaults but last longer.
func (d *Store) events() *pebble.EventListener {
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			d.stalls.Add(1)
			d.stallStart.Store(time.Now().UnixNano())
			d.log.Warn("store engine stalls writes until it catches up", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			took := time.Duration(time.Now().UnixNano() - d.stallStart.Load())
			d.stallNanos.Add(int64(took))
			d.log.Info("store engine write stall ended", "took", took.Round(time.Millisecond))
		},
	}
}

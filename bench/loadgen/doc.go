// Package loadgen is the engine of `arina bench`: a load generator that drives any MQTT
// broker with add/remove events and reports publish and acknowledgement rates and
// latency percentiles.
//
// Run opens Options.Publishers connections, MQTT 5 or 3.1.1, with one of two clients
// (Options.Client). The default, ClientWire (wire.go), is the generator's own: each
// connection's PUBLISHes gather in one buffer written by one goroutine, and one
// goroutine reads what the broker sends; CONNECT, SUBSCRIBE and their acks go through
// the paho codecs. It costs a fraction of a microsecond per event, so that a
// broker-vs-broker run measures the brokers. ClientPaho publishes through
// github.com/eclipse/paho.golang (MQTT 5) or github.com/eclipse/paho.mqtt.golang
// (3.1.1), one library call per event, as an application does.
//
// Each connection has an in-flight window of exactly Options.InFlight publishes. For
// MQTT 5 at QoS 1 it is capped at the broker's Receive Maximum (mosquitto announces
// 20), which the report shows: a bigger window would only wait in the client for a send
// quota, and that wait would be counted as ack latency. Each slot of the window draws
// its events from its own seeded generator into reused buffers (topics are precomputed
// up to 2^18 content×reaction pairs); the time from publish to PUBACK (QoS 1) is the
// ack latency. A slot is a worker goroutine that publishes and waits, except for the
// wire client at QoS 1 without probes, where the connection's reader drives every
// slot (pipeline.go): on a PUBACK it completes that slot's publish and queues its next
// one, or, paced (Options.Rate), leaves the slot to a per-connection pacer that sends
// the connection's share of the rate every 2 ms. At QoS 0 the wire client also reports what the broker confirmed
// reading, by PINGREQ barriers at both ends of the measured phase.
//
// Visibility latency (Options.HTTPURL, Arina only): every SampleEvery-th event of the
// first publisher, while no probe is outstanding, is replaced by an add on a fresh
// content "<ContentPrefix>probe-<run>-<n>"; a poller GETs /api/v1/contents/{id} every PollInterval from
// just before the publish until the content shows a count. One probe at a time keeps
// the poller from loading the API it measures.
//
// Warm-up: events published during Options.Warmup, and their acks even when they
// arrive later, are counted apart and left out of the report.
//
// Goroutines: Run owns them all (workers or pipelines, the poller, one that closes a
// channel when the workers are done, each wire connection's reader, writer and
// watchdog) and returns only after they have ended and every connection is closed. Counters are atomics; latency histograms are lock-free (see histogram.go).
package loadgen

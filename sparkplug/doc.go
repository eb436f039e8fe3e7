// Package sparkplug turns Sparkplug B messages (Eclipse Tahu's spBv1.0 namespace,
// protobuf payloads from sparkplug_b.proto, generated in package pb) into ingest
// events: a factory's edge nodes drive memberships as they already speak.
//
// Topics are spBv1.0/<group>/<type>/<edge_node>[/<device>]. The mapping, by default:
// content = the edge node id (Options.Content ContentEdgeDevice: <edge>:<device>),
// reaction = the metric's name, user = the device id (the edge node id for a node's
// own metrics), for Boolean metrics: true adds, false (or null) removes. Rules match
// metric names by glob and may name the reaction, take the user from the metric's
// value (a badge reader's string), or ignore the metric. Metrics no rule matches whose
// name cannot be a reaction type ("Node Control/Rebirth") are ignored and counted.
//
// Messages:
//   - NBIRTH / DBIRTH: record the metric aliases (later data may name metrics by alias
//     only) and set the node's (device's) memberships to what the birth says: adds
//     for what it holds, removes for what it held before and no longer declares.
//   - NDATA / DDATA: each mapped metric is an add or a remove; ts = the metric's
//     timestamp, else the payload's (last-writer-wins, as for any event).
//   - DDEATH: removes every membership of the device.
//   - NDEATH (usually the node's will): removes those of the node and every device,
//     if its bdSeq is that of the node's last NBIRTH (else it is an earlier session's
//     death, ignored and counted).
//   - NCMD, DCMD, STATE: not ingested.
//
// Payloads compressed as Tahu's clients do (uuid "SPBV1.0_COMPRESSED", DEFLATE or GZIP)
// are inflated first, to at most Options.MaxPayload bytes.
//
// Sequence numbers (0-255, per edge node) are checked: a gap is counted in
// arina_sparkplug_seq_gaps_total and logged. A payload that is not Sparkplug B, or over
// Options.MaxPayload, is refused whole (an *ingest.Error); a metric that maps to a bad
// id or a timestamp far ahead is refused alone (Result.Rejected).
package sparkplug

package sparkplug

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/sparkplug/pb"
)

// payload is what the decoder uses of a Sparkplug B Payload message (package pb),
// decoded by decodePayload straight from the wire: proto.Unmarshal into the generated
// types allocates every metric and value and took over half of the decode cost.
type payload struct {
	timestamp uint64 // 0: none
	seq       uint64
	hasSeq    bool
	metrics   []metric
	// compressed: uuid is "SPBV1.0_COMPRESSED" and body is a compressed Payload (Tahu's
	// clients compress on request); body is a slice of the decoded input.
	compressed bool
	body       []byte
}

type valueKind uint8

// The kinds of a metric's value (the Metric.value oneof).
const (
	valNone valueKind = iota
	valInt
	valLong
	valFloat
	valDouble
	valBool
	valString
	valBytes
	valDataSet
	valTemplate
	valExtension
)

type metric struct {
	name       string
	hasName    bool
	alias      uint64
	hasAlias   bool
	timestamp  uint64 // 0: none
	datatype   uint32
	historical bool
	null       bool
	kind       valueKind
	u          uint64 // valInt, valLong, valBool (0 or 1)
	s          string // valString
}

// errWire is the error of a payload that is not valid protobuf.
var errWire = errors.New("invalid protobuf encoding")

// decodePayload decodes b as sparkplug_b.proto's Payload, into p (reusing its metrics'
// storage). It accepts and refuses exactly what proto.Unmarshal into pb.Payload does
// (FuzzDecodePayload checks it): fields of an unexpected wire type and unknown fields
// (extensions included) are skipped, as proto.Unmarshal keeps them as unknown fields;
// nested messages the decoder does not use (metadata, properties, datasets, templates)
// are checked with proto.Unmarshal.
func decodePayload(b []byte, p *payload) error {
	*p = payload{metrics: p.metrics[:0]}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errWire
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			p.timestamp, n = protowire.ConsumeVarint(b)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 {
				p.metrics = append(p.metrics, metric{})
				if err := decodeMetric(v, &p.metrics[len(p.metrics)-1]); err != nil {
					return err
				}
			}
		case num == 3 && typ == protowire.VarintType:
			p.seq, n = protowire.ConsumeVarint(b)
			p.hasSeq = true
		case num == 4 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			p.compressed = string(v) == compressedUUID
		case num == 5 && typ == protowire.BytesType:
			p.body, n = protowire.ConsumeBytes(b)
		default: // extensions, unknown fields
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

func decodeMetric(b []byte, m *metric) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errWire
		}
		b = b[n:]
		var v uint64
		var bs []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			bs, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var sub proto.Message // a nested message to check
		switch {
		case typ == protowire.VarintType:
			switch num {
			case 2:
				m.alias, m.hasAlias = v, true
			case 3:
				m.timestamp = v
			case 4:
				m.datatype = uint32(v)
			case 5:
				m.historical = v != 0
			case 7:
				m.null = v != 0
			case 10:
				m.kind, m.u = valInt, uint64(uint32(v))
			case 11:
				m.kind, m.u = valLong, v
			case 14:
				m.kind, m.u = valBool, 0
				if v != 0 {
					m.u = 1
				}
			}
		case typ == protowire.BytesType:
			switch num {
			case 1:
				m.name, m.hasName = string(bs), true
			case 8:
				sub = &pb.Payload_MetaData{}
			case 9:
				sub = &pb.Payload_PropertySet{}
			case 15:
				m.kind, m.s = valString, string(bs)
			case 16:
				m.kind = valBytes
			case 17:
				m.kind, sub = valDataSet, &pb.Payload_DataSet{}
			case 18:
				m.kind, sub = valTemplate, &pb.Payload_Template{}
			case 19:
				m.kind, sub = valExtension, &pb.Payload_Metric_MetricValueExtension{}
			}
		case typ == protowire.Fixed32Type && num == 12:
			m.kind = valFloat
		case typ == protowire.Fixed64Type && num == 13:
			m.kind = valDouble
		}
		if sub != nil {
			if err := proto.Unmarshal(bs, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

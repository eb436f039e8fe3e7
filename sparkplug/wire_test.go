package sparkplug

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/sparkplug/pb"
)

// FuzzDecodePayload checks decodePayload against proto.Unmarshal into the generated
// pb.Payload: both accept the same inputs and agree on every field the decoder uses.
func FuzzDecodePayload(f *testing.F) {
	seeds := []*pb.Payload{
		{},
		{Timestamp: proto.Uint64(1765000000000), Seq: proto.Uint64(7), Uuid: proto.String("u"), Body: []byte{1, 2}},
		{Metrics: []*pb.Payload_Metric{
			{Name: proto.String("gas_on"), Alias: proto.Uint64(3), Timestamp: proto.Uint64(5), Datatype: proto.Uint32(11),
				IsHistorical: proto.Bool(true), IsNull: proto.Bool(false), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}},
			{Alias: proto.Uint64(4), Value: &pb.Payload_Metric_StringValue{StringValue: "sam"}},
			{Name: proto.String("bdSeq"), Value: &pb.Payload_Metric_LongValue{LongValue: 1 << 40}},
			{Name: proto.String("i"), Value: &pb.Payload_Metric_IntValue{IntValue: 7}},
			{Name: proto.String("f"), Value: &pb.Payload_Metric_FloatValue{FloatValue: 1.5}},
			{Name: proto.String("d"), Value: &pb.Payload_Metric_DoubleValue{DoubleValue: 2.5}},
			{Name: proto.String("b"), Value: &pb.Payload_Metric_BytesValue{BytesValue: []byte("x")}},
			{Name: proto.String("ds"), Metadata: &pb.Payload_MetaData{ContentType: proto.String("t")},
				Properties: &pb.Payload_PropertySet{Keys: []string{"k"}, Values: []*pb.Payload_PropertyValue{{Type: proto.Uint32(3), Value: &pb.Payload_PropertyValue_IntValue{IntValue: 1}}}},
				Value:      &pb.Payload_Metric_DatasetValue{DatasetValue: &pb.Payload_DataSet{NumOfColumns: proto.Uint64(1), Columns: []string{"c"}}}},
			{Name: proto.String("t"), Value: &pb.Payload_Metric_TemplateValue{TemplateValue: &pb.Payload_Template{Version: proto.String("1")}}},
			{IsNull: proto.Bool(true)},
		}},
	}
	for _, p := range seeds {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A name sent as a varint (an unknown field to proto.Unmarshal), a group, a bad tag.
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.BytesType), 2))
	f.Add([]byte{0x12, 0x02, 0x08, 0x05})
	f.Add([]byte{0x0b, 0x0c})
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want pb.Payload
		werr := proto.Unmarshal(b, &want)
		var got payload
		gerr := decodePayload(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v, decodePayload: %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		if got.timestamp != want.GetTimestamp() || got.hasSeq != (want.Seq != nil) || got.seq != want.GetSeq() || len(got.metrics) != len(want.Metrics) {
			t.Fatalf("payload: got ts %d seq %v/%d, %d metrics; want %d %v/%d, %d",
				got.timestamp, got.hasSeq, got.seq, len(got.metrics), want.GetTimestamp(), want.Seq != nil, want.GetSeq(), len(want.Metrics))
		}
		for i, wm := range want.Metrics {
			gm := got.metrics[i]
			ok := gm.name == wm.GetName() && gm.hasName == (wm.Name != nil) && gm.alias == wm.GetAlias() &&
				gm.hasAlias == (wm.Alias != nil) && gm.timestamp == wm.GetTimestamp() && gm.datatype == wm.GetDatatype() &&
				gm.historical == wm.GetIsHistorical() && gm.null == wm.GetIsNull()
			switch v := wm.Value.(type) {
			case nil:
				ok = ok && gm.kind == valNone
			case *pb.Payload_Metric_IntValue:
				ok = ok && gm.kind == valInt && gm.u == uint64(v.IntValue)
			case *pb.Payload_Metric_LongValue:
				ok = ok && gm.kind == valLong && gm.u == v.LongValue
			case *pb.Payload_Metric_BooleanValue:
				ok = ok && gm.kind == valBool && (gm.u == 1) == v.BooleanValue
			case *pb.Payload_Metric_StringValue:
				ok = ok && gm.kind == valString && gm.s == v.StringValue
			case *pb.Payload_Metric_FloatValue:
				ok = ok && gm.kind == valFloat
			case *pb.Payload_Metric_DoubleValue:
				ok = ok && gm.kind == valDouble
			case *pb.Payload_Metric_BytesValue:
				ok = ok && gm.kind == valBytes
			case *pb.Payload_Metric_DatasetValue:
				ok = ok && gm.kind == valDataSet
			case *pb.Payload_Metric_TemplateValue:
				ok = ok && gm.kind == valTemplate
			case *pb.Payload_Metric_ExtensionValue:
				ok = ok && gm.kind == valExtension
			}
			if !ok {
				t.Fatalf("metric %d: got %+v, want %v", i, gm, wm)
			}
		}
	})
}

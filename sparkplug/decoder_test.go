package sparkplug_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/sparkplug"
	"github.com/arina-dev/arina/sparkplug/pb"
	"github.com/arina-dev/arina/store"
)

// Metric builders for Sparkplug B payloads.

func boolM(name string, alias uint64, v bool) *pb.Payload_Metric {
	m := &pb.Payload_Metric{Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: v}}
	if name != "" {
		m.Name = proto.String(name)
	}
	if alias != 0 {
		m.Alias = proto.Uint64(alias)
	}
	return m
}

func strM(name string, v string) *pb.Payload_Metric {
	return &pb.Payload_Metric{Name: proto.String(name), Datatype: proto.Uint32(uint32(pb.DataType_String)), Value: &pb.Payload_Metric_StringValue{StringValue: v}}
}

func longM(name string, v uint64) *pb.Payload_Metric {
	return &pb.Payload_Metric{Name: proto.String(name), Datatype: proto.Uint32(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: v}}
}

func payload(tb testing.TB, seq int64, ts uint64, ms ...*pb.Payload_Metric) []byte {
	tb.Helper()
	p := &pb.Payload{Metrics: ms}
	if seq >= 0 {
		p.Seq = proto.Uint64(uint64(seq))
	}
	if ts != 0 {
		p.Timestamp = proto.Uint64(ts)
	}
	b, err := proto.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// show renders events as "add content/reaction/user@ts", sorted.
func show(evs []ingest.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		a := "add"
		if ev.Action == store.Remove {
			a = "remove"
		}
		s := fmt.Sprintf("%s %s/%s/%s", a, ev.ContentID, ev.ReactionType, ev.UserID)
		if ev.TS != 0 {
			s += fmt.Sprintf("@%d", ev.TS)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func mustNew(tb testing.TB, opts sparkplug.Options, reg prometheus.Registerer) *sparkplug.Decoder {
	tb.Helper()
	d, err := sparkplug.New(opts, nil, reg)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func decode(tb testing.TB, d *sparkplug.Decoder, topic string, b []byte) []string {
	tb.Helper()
	res, err := d.Decode(topic, b, ingest.SourceMQTT)
	if err != nil {
		tb.Fatalf("%s: %v", topic, err)
	}
	if len(res.Rejected) > 0 {
		tb.Fatalf("%s: rejected %v", topic, res.Rejected)
	}
	return show(res.Events)
}

func want(tb testing.TB, what string, got []string, w ...string) {
	tb.Helper()
	slices.Sort(w)
	if w == nil {
		w = []string{}
	}
	if !slices.Equal(got, w) {
		tb.Errorf("%s:\n got %q\nwant %q", what, got, w)
	}
}

func TestDecoder_Lifecycle(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := mustNew(t, sparkplug.Options{}, reg)
	ts := uint64(time.Now().UnixMilli())

	got := decode(t, d, "spBv1.0/plant/NBIRTH/range-2", payload(t, 0, ts,
		longM("bdSeq", 3), boolM("Node Control/Rebirth", 1, false), boolM("lit", 2, true)))
	want(t, "NBIRTH", got, fmt.Sprintf("add range-2/lit/range-2@%d", ts))

	got = decode(t, d, "spBv1.0/plant/DBIRTH/range-2/v7", payload(t, 1, ts,
		boolM("gas_on", 10, true), boolM("fault", 11, false), strM("label", "Valve 7")))
	want(t, "DBIRTH", got, fmt.Sprintf("add range-2/gas_on/v7@%d", ts), fmt.Sprintf("remove range-2/fault/v7@%d", ts))

	// DDATA by alias only, with a metric timestamp.
	got = decode(t, d, "spBv1.0/plant/DDATA/range-2/v7", payload(t, 2, ts+5,
		&pb.Payload_Metric{Alias: proto.Uint64(11), Timestamp: proto.Uint64(ts + 7), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: true}}))
	want(t, "DDATA", got, fmt.Sprintf("add range-2/fault/v7@%d", ts+7))

	got = decode(t, d, "spBv1.0/plant/DBIRTH/range-2/v8", payload(t, 3, ts, boolM("gas_on", 20, true)))
	want(t, "DBIRTH v8", got, fmt.Sprintf("add range-2/gas_on/v8@%d", ts))

	// DDEATH removes what v7 holds: gas_on and fault.
	got = decode(t, d, "spBv1.0/plant/DDEATH/range-2/v7", payload(t, 4, ts+10))
	want(t, "DDEATH", got, fmt.Sprintf("remove range-2/gas_on/v7@%d", ts+10), fmt.Sprintf("remove range-2/fault/v7@%d", ts+10))

	// An NDEATH of an earlier session (another bdSeq) is ignored.
	got = decode(t, d, "spBv1.0/plant/NDEATH/range-2", payload(t, -1, 0, longM("bdSeq", 2)))
	want(t, "stale NDEATH", got)
	if n := testutil.ToFloat64(mustCounter(t, reg, "arina_sparkplug_stale_deaths_total")); n != 1 {
		t.Errorf("stale deaths = %v, want 1", n)
	}
	// The node's own NDEATH removes every membership of the node, without ts.
	got = decode(t, d, "spBv1.0/plant/NDEATH/range-2", payload(t, -1, 0, longM("bdSeq", 3)))
	want(t, "NDEATH", got, "remove range-2/gas_on/v8", "remove range-2/lit/range-2")
	if d.Nodes() != 0 {
		t.Errorf("nodes after NDEATH = %d, want 0", d.Nodes())
	}
	// After the death, a DDEATH or NDEATH has nothing left to remove.
	want(t, "NDEATH again", decode(t, d, "spBv1.0/plant/NDEATH/range-2", payload(t, -1, 0, longM("bdSeq", 3))))
}

func mustCounter(tb testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.Metric {
				sum += m.GetCounter().GetValue()
			}
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(sum)
			return c
		}
	}
	tb.Fatalf("metric %s not registered", name)
	return nil
}

func TestDecoder_BirthReplacesMemberships(t *testing.T) {
	d := mustNew(t, sparkplug.Options{}, nil)
	decode(t, d, "spBv1.0/g/DBIRTH/e/dev", payload(t, -1, 0, boolM("a", 1, true), boolM("b", 2, true)))
	decode(t, d, "spBv1.0/g/DDATA/e/dev", payload(t, -1, 0, boolM("", 3, true))) // unknown alias: ignored
	got := decode(t, d, "spBv1.0/g/DBIRTH/e/dev", payload(t, -1, 0, boolM("a", 1, true), boolM("c", 2, true)))
	want(t, "second DBIRTH", got, "add e/a/dev", "add e/c/dev", "remove e/b/dev")
	// Aliases are those of the latest birth: 2 is now c.
	got = decode(t, d, "spBv1.0/g/DDATA/e/dev", payload(t, -1, 0, boolM("", 2, false)))
	want(t, "DDATA alias 2", got, "remove e/c/dev")
	got = decode(t, d, "spBv1.0/g/DDEATH/e/dev", payload(t, -1, 0))
	want(t, "DDEATH", got, "remove e/a/dev")
}

func TestDecoder_Rules(t *testing.T) {
	d := mustNew(t, sparkplug.Options{
		Content: sparkplug.ContentEdgeDevice,
		Rules: []sparkplug.Rule{
			{Metric: "Inputs/Badge/*", Reaction: "active", User: sparkplug.UserValue},
			{Metric: "Outputs/*", Reaction: "running"},
			{Metric: "debug*", Ignore: true},
		},
	}, nil)
	got := decode(t, d, "spBv1.0/g/DBIRTH/stove-3/reader", payload(t, -1, 0,
		strM("Inputs/Badge/1", "sam"), strM("Inputs/Badge/2", ""), boolM("Outputs/Fan", 0, true), boolM("debug_on", 0, true)))
	want(t, "DBIRTH", got, "add stove-3:reader/active/sam", "add stove-3:reader/running/reader")
	// A new badge replaces the previous one; an empty value removes it.
	got = decode(t, d, "spBv1.0/g/DDATA/stove-3/reader", payload(t, -1, 0, strM("Inputs/Badge/1", "ann"), strM("Inputs/Badge/2", "bo")))
	want(t, "new badges", got, "remove stove-3:reader/active/sam", "add stove-3:reader/active/ann", "add stove-3:reader/active/bo")
	got = decode(t, d, "spBv1.0/g/DDATA/stove-3/reader", payload(t, -1, 0, strM("Inputs/Badge/1", "")))
	want(t, "badge gone", got, "remove stove-3:reader/active/ann")
	got = decode(t, d, "spBv1.0/g/DDEATH/stove-3/reader", payload(t, -1, 0))
	want(t, "DDEATH", got, "remove stove-3:reader/active/bo", "remove stove-3:reader/running/reader")
	// Node metrics keep the edge node as content and user.
	got = decode(t, d, "spBv1.0/g/NDATA/stove-3", payload(t, -1, 0, boolM("Outputs/Fan", 0, true)))
	want(t, "NDATA", got, "add stove-3/running/stove-3")
}

func TestDecoder_Rejects(t *testing.T) {
	d := mustNew(t, sparkplug.Options{MaxPayload: 64, Rules: []sparkplug.Rule{{Metric: "badge", Reaction: "active", User: sparkplug.UserValue}}}, nil)
	future := uint64(time.Now().Add(time.Hour).UnixMilli())
	for _, tc := range []struct {
		name, topic string
		payload     []byte
		code        ingest.Code
	}{
		{"not protobuf", "spBv1.0/g/DDATA/e/d", []byte("add sam"), ingest.CodeBadPayload},
		{"too large", "spBv1.0/g/DDATA/e/d", make([]byte, 65), ingest.CodePayloadTooLarge},
		{"unknown type", "spBv1.0/g/XDATA/e/d", payload(t, 0, 0), ingest.CodeBadPayload},
		{"device on node message", "spBv1.0/g/NDATA/e/d", payload(t, 0, 0), ingest.CodeBadPayload},
		{"no device", "spBv1.0/g/DDATA/e", payload(t, 0, 0), ingest.CodeBadPayload},
		{"too many levels", "spBv1.0/g/DDATA/e/d/x", payload(t, 0, 0), ingest.CodeBadPayload},
		{"empty edge", "spBv1.0/g/DDATA//d", payload(t, 0, 0), ingest.CodeMissingField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Decode(tc.topic, tc.payload, ingest.SourceMQTT)
			if err == nil || ingest.CodeOf(err) != tc.code {
				t.Fatalf("err = %v (code %s), want code %s", err, ingest.CodeOf(err), tc.code)
			}
		})
	}
	if d.Nodes() != 0 {
		t.Errorf("refused messages left %d nodes", d.Nodes())
	}
	// Bad metrics are refused one by one; the others apply.
	res, err := d.Decode("spBv1.0/g/DDATA/e/d", payload(t, -1, 0, strM("badge", "a+b"), boolM("ok", 0, true)), ingest.SourceMQTT)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "valid metrics", show(res.Events), "add e/ok/d")
	if len(res.Rejected) != 1 || ingest.CodeOf(res.Rejected[0]) != ingest.CodeInvalidID {
		t.Errorf("rejected = %v, want one invalid_id", res.Rejected)
	}
	res, err = d.Decode("spBv1.0/g/DDATA/e/d", payload(t, -1, future, boolM("ok", 0, false)), ingest.SourceMQTT)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 0 || len(res.Rejected) != 1 || ingest.CodeOf(res.Rejected[0]) != ingest.CodeInvalidField {
		t.Errorf("future ts: events %v, rejected %v; want none and one invalid_field", show(res.Events), res.Rejected)
	}
	// Commands and STATE are relayed, not ingested.
	for _, topic := range []string{"spBv1.0/g/NCMD/e", "spBv1.0/g/DCMD/e/d", "spBv1.0/STATE/scada"} {
		res, err := d.Decode(topic, []byte("not even protobuf"), ingest.SourceMQTT)
		if err != nil || len(res.Events) != 0 {
			t.Errorf("%s: %v %v, want nothing", topic, show(res.Events), err)
		}
	}
}

func TestDecoder_SeqGaps(t *testing.T) {
	reg := prometheus.NewRegistry()
	var log bytes.Buffer
	d, err := sparkplug.New(sparkplug.Options{}, slog.New(slog.NewTextHandler(&log, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []int64{0, 1, 2, 4, 5} {
		decode(t, d, "spBv1.0/g/NDATA/e", payload(t, s, 0))
	}
	decode(t, d, "spBv1.0/g/NBIRTH/e", payload(t, 0, 0)) // a birth starts again at 0
	for s := int64(1); s <= 256; s++ {                   // and wraps from 255 to 0
		decode(t, d, "spBv1.0/g/NDATA/e", payload(t, s%256, 0))
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "arina_sparkplug_seq_gaps_total")); n != 1 {
		t.Errorf("gaps = %v, want 1", n)
	}
	// Every gap is counted; one line per node per minute is logged.
	for _, s := range []int64{9, 20, 40} {
		decode(t, d, "spBv1.0/g/NDATA/e", payload(t, s, 0))
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "arina_sparkplug_seq_gaps_total")); n != 4 {
		t.Errorf("gaps = %v, want 4", n)
	}
	if lines := strings.Count(log.String(), "sequence gap"); lines != 1 {
		t.Errorf("logged %d gap lines, want 1:\n%s", lines, log.String())
	}
}

func TestOptions_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sparkplug.Options
		want string // "" = valid
	}{
		{"zero", sparkplug.Options{}, ""},
		{"edge_device", sparkplug.Options{Content: "edge_device", HostID: "scada-1"}, ""},
		{"content", sparkplug.Options{Content: "group"}, `content "group"`},
		{"host id", sparkplug.Options{HostID: "a/b"}, "host_id"},
		{"no glob", sparkplug.Options{Rules: []sparkplug.Rule{{Reaction: "x"}}}, `rules[0].metric "": a glob is required`},
		{"bad glob", sparkplug.Options{Rules: []sparkplug.Rule{{Metric: "[", Reaction: "x"}}}, "rules[0].metric"},
		{"slash needs reaction", sparkplug.Options{Rules: []sparkplug.Rule{{Metric: "Inputs/*"}}}, `rules[0].reaction "": required`},
		{"bad reaction", sparkplug.Options{Rules: []sparkplug.Rule{{Metric: "x", Reaction: "a+b"}}}, "rules[0].reaction"},
		{"bad user", sparkplug.Options{Rules: []sparkplug.Rule{{Metric: "x", User: "name"}}}, "rules[0].user"},
		{"ignore needs no reaction", sparkplug.Options{Rules: []sparkplug.Rule{{Metric: "Inputs/*", Ignore: true}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, sparkplug.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalidOptions mentioning %q", err, tc.want)
			}
		})
	}
	err := sparkplug.Options{Content: "x", Rules: []sparkplug.Rule{{}}}.Validate()
	if n := strings.Count(err.Error(), "\n") + 1; n != 2 {
		t.Errorf("Validate reported %d problems, want both: %v", n, err)
	}
}

func FuzzDecoder_Decode(f *testing.F) {
	f.Add("spBv1.0/g/DDATA/e/d", payload(f, 1, 5, boolM("a", 1, true), strM("b", "x")))
	f.Add("spBv1.0/g/NBIRTH/e", payload(f, 0, 5, longM("bdSeq", 1), boolM("a", 1, true)))
	f.Add("spBv1.0/g/NDEATH/e", payload(f, -1, 0, longM("bdSeq", 1)))
	f.Add("spBv1.0/STATE/h", []byte(`{"online":true}`))
	d := mustNew(f, sparkplug.Options{Rules: []sparkplug.Rule{{Metric: "b", Reaction: "r", User: sparkplug.UserValue}}}, nil)
	f.Fuzz(func(t *testing.T, topic string, b []byte) {
		res, err := d.Decode(topic, b, ingest.SourceMQTT)
		if err != nil {
			var ie *ingest.Error
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *ingest.Error", err)
			}
			return
		}
		for _, ev := range res.Events {
			if err := ev.Validate(); err != nil {
				t.Fatalf("invalid event %+v: %v", ev, err)
			}
		}
	})
}

// compressed wraps a payload as Tahu's clients do when asked to compress.
func compressed(tb testing.TB, algorithm string, inner []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch algorithm {
	case "GZIP":
		w = gzip.NewWriter(&buf)
	default:
		w = zlib.NewWriter(&buf)
	}
	if _, err := w.Write(inner); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	p := &pb.Payload{Uuid: proto.String("SPBV1.0_COMPRESSED"), Body: buf.Bytes()}
	if algorithm != "" {
		p.Metrics = []*pb.Payload_Metric{strM("algorithm", algorithm)}
	}
	b, err := proto.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecoder_Compressed(t *testing.T) {
	d := mustNew(t, sparkplug.Options{MaxPayload: 4096}, nil)
	inner := payload(t, -1, 0, boolM("gas_on", 0, true))
	for _, alg := range []string{"", "DEFLATE", "GZIP", "gzip"} {
		got := decode(t, d, "spBv1.0/g/DDATA/e/v"+alg, compressed(t, strings.ToUpper(alg), inner))
		want(t, "compressed "+alg, got, "add e/gas_on/v"+alg)
	}
	bomb := payload(t, -1, 0, strM("pad", strings.Repeat("x", 5000)))
	for _, tc := range []struct {
		name    string
		payload []byte
		code    ingest.Code
	}{
		{"over the limit once inflated", compressed(t, "DEFLATE", bomb), ingest.CodePayloadTooLarge},
		{"unknown algorithm", compressed(t, "LZ4", inner), ingest.CodeBadPayload},
		{"not deflate", func() []byte {
			b, _ := proto.Marshal(&pb.Payload{Uuid: proto.String("SPBV1.0_COMPRESSED"), Body: []byte("plain")})
			return b
		}(), ingest.CodeBadPayload},
		{"not protobuf inside", compressed(t, "GZIP", []byte{0xff}), ingest.CodeBadPayload},
		{"compressed twice", compressed(t, "GZIP", compressed(t, "GZIP", inner)), ingest.CodeBadPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.Decode("spBv1.0/g/DDATA/e/v", tc.payload, ingest.SourceMQTT); ingest.CodeOf(err) != tc.code {
				t.Fatalf("err %v, want code %s", err, tc.code)
			}
		})
	}
}

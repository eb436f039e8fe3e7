package api_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

const (
	reactionsPath = "/api/v1/reactions"
	ndjsonType    = "application/x-ndjson"
)

// batchReply is the body of a 200 to POST /api/v1/reactions.
type batchReply struct {
	Results []struct {
		Index   int    `json:"index"`
		Status  string `json:"status"`
		Changed *bool  `json:"changed"`
		Count   *int64 `json:"count"`
		Error   *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	} `json:"results"`
	Applied  int `json:"applied"`
	Rejected int `json:"rejected"`
}

// decodeBatch checks that r is a well-formed 200 batch answer and returns it with one
// line per item: "0 applied changed=true count=1" or "1 rejected invalid_id user_id".
func decodeBatch(r reply) (batchReply, []string, error) {
	var br batchReply
	if r.status != http.StatusOK {
		return br, nil, fmt.Errorf("status = %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		return br, nil, fmt.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := strictDecode(r.body, &br); err != nil {
		return br, nil, err
	}
	if br.Results == nil {
		return br, nil, fmt.Errorf("results is %s, want an array; body %s", "null or absent", r.body)
	}
	lines := make([]string, len(br.Results))
	applied, rejected := 0, 0
	for i, res := range br.Results {
		if res.Index != i {
			return br, nil, fmt.Errorf("results[%d].index = %d, want %d", i, res.Index, i)
		}
		switch res.Status {
		case "applied":
			if res.Changed == nil || res.Count == nil || res.Error != nil {
				return br, nil, fmt.Errorf("results[%d] applied: want changed and count, no error; body %s", i, r.body)
			}
			lines[i] = fmt.Sprintf("%d applied changed=%v count=%d", i, *res.Changed, *res.Count)
			applied++
		case "rejected":
			if res.Changed != nil || res.Count != nil || res.Error == nil || res.Error.Code == "" || res.Error.Message == "" {
				return br, nil, fmt.Errorf("results[%d] rejected: want an error with code and message, no changed or count; body %s", i, r.body)
			}
			lines[i] = strings.TrimSpace(fmt.Sprintf("%d rejected %s %s", i, res.Error.Code, res.Error.Field))
			rejected++
		default:
			return br, nil, fmt.Errorf("results[%d].status = %q, want applied or rejected", i, res.Status)
		}
	}
	if br.Applied != applied || br.Rejected != rejected {
		return br, nil, fmt.Errorf("applied, rejected = %d, %d; the results say %d, %d", br.Applied, br.Rejected, applied, rejected)
	}
	return br, lines, nil
}

// mustPostBatch posts a batch and requires a well-formed 200.
func (h *harness) mustPostBatch(tb testing.TB, contentType, body string) (batchReply, []string) {
	tb.Helper()
	br, lines, err := decodeBatch(h.do(tb, http.MethodPost, reactionsPath, contentType, body))
	if err != nil {
		tb.Fatalf("POST %s: %v", reactionsPath, err)
	}
	return br, lines
}

// checkBatchMetrics requires every item of br to be counted once as received, and as
// applied or rejected by its reason, and nothing else to have been counted.
func (h *harness) checkBatchMetrics(tb testing.TB, br batchReply) {
	tb.Helper()
	reasons := map[string]float64{}
	for _, res := range br.Results {
		if res.Error != nil {
			reasons[res.Error.Code]++
		}
	}
	if got, want := h.metric(tb, "arina_events_received_total", "source", "http"), float64(len(br.Results)); got != want {
		tb.Errorf("arina_events_received_total{source=http} = %v, want %v", got, want)
	}
	if got, want := h.metric(tb, "arina_events_applied_total", "source", "http"), float64(br.Applied); got != want {
		tb.Errorf("arina_events_applied_total{source=http} = %v, want %v", got, want)
	}
	if got, want := h.metric(tb, "arina_events_rejected_total"), float64(br.Rejected); got != want {
		tb.Errorf("arina_events_rejected_total = %v, want %v", got, want)
	}
	for reason, want := range reasons {
		if got := h.metric(tb, "arina_events_rejected_total", "source", "http", "reason", reason); got != want {
			tb.Errorf("arina_events_rejected_total{source=http,reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// jsonArray is a JSON array of the items.
func jsonArray(items ...string) string { return "[" + strings.Join(items, ",") + "]" }

// ndjson is the items one per line.
func ndjson(items ...string) string { return strings.Join(items, "\n") + "\n" }

// manyItems returns valid adds of distinct users to Stew's fire, then `{}` items (each
// invalid) up to n items in all.
func manyItems(valid, n int) []string {
	items := make([]string, n)
	for i := range items {
		items[i] = "{}"
		if i < valid {
			items[i] = eventJSON("add", "Stew", "fire", fmt.Sprintf("u%d", i))
		}
	}
	return items
}

func TestServer_PostReactions(t *testing.T) {
	t.Parallel()
	var (
		addSam    = eventJSON("add", "Stew", "fire", "Sam")
		addAnn    = eventJSON("add", "Stew", "fire", "Ann")
		removeSam = eventJSON("remove", "Stew", "fire", "Sam")
		removeAnn = eventJSON("remove", "Stew", "fire", "Ann")
		removeBob = eventJSON("remove", "Stew", "fire", "Bob")
		samYum    = eventJSON("add", "Stew", "yum", "Sam")
		kimSoup   = eventJSON("add", "Soup", "fire", "Kim")
		badUTF8   = `{"action":"add","content_id":"Stew","reaction_type":"fire","user_id":"Ann` + "\xff" + `"}`
	)
	dupsAndRemoves := []string{addSam, addAnn, addSam, removeBob, removeAnn, samYum, kimSoup}
	dupsAndRemovesWant := []string{
		"0 applied changed=true count=1",
		"1 applied changed=true count=2",
		"2 applied changed=false count=2", // duplicate add
		"3 applied changed=false count=2", // remove of someone absent
		"4 applied changed=true count=1",
		"5 applied changed=true count=1",
		"6 applied changed=true count=1",
	}
	dupsAndRemovesCounts := map[string]map[string]int64{"Stew": {"fire": 1, "yum": 1}, "Soup": {"fire": 1}, "Bob": nil}
	mixed := []string{
		addSam,
		annWith("user_id", "A/B"),
		annWith("action", omitted),
		`42`,
		`null`,
		`"add Sam"`,
		`[]`,
		annWith("action", "like"),
		annWith("user_id", 42),
		annWith("content_id", strings.Repeat("s", ingest.MaxIDLen+1)),
		badUTF8,
		addAnn,
		addSam,
		`{}`,
	}
	mixedWant := []string{
		"0 applied changed=true count=1",
		"1 rejected invalid_id user_id",
		"2 rejected missing_field action",
		"3 rejected bad_json",
		"4 rejected bad_json",
		"5 rejected bad_json",
		"6 rejected bad_json",
		"7 rejected invalid_action action",
		"8 rejected invalid_field user_id",
		"9 rejected invalid_id content_id",
		"10 rejected bad_json",
		"11 applied changed=true count=2",
		"12 applied changed=false count=2",
		"13 rejected missing_field action",
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		want        []string
		wantCounts  map[string]map[string]int64 // content → store counts afterwards; nil map: unknown content
	}{
		{name: "JSONArray", contentType: "application/json", body: jsonArray(dupsAndRemoves...),
			want: dupsAndRemovesWant, wantCounts: dupsAndRemovesCounts},
		{name: "NDJSON", contentType: ndjsonType, body: ndjson(dupsAndRemoves...),
			want: dupsAndRemovesWant, wantCounts: dupsAndRemovesCounts},
		// Blank and whitespace-only lines are no items; CRLF and a last line without a
		// newline are fine.
		{name: "NDJSONBlankLinesCRLF", contentType: ndjsonType, body: "\r\n" + strings.Join(dupsAndRemoves, "\r\n\n \t\r\n"),
			want: dupsAndRemovesWant, wantCounts: dupsAndRemovesCounts},
		{name: "NDJSONCharset", contentType: ndjsonType + "; charset=utf-8", body: ndjson(addSam),
			want: []string{"0 applied changed=true count=1"}, wantCounts: map[string]map[string]int64{"Stew": {"fire": 1}}},
		{name: "NDJSONMixedCase", contentType: "Application/X-NDJSON", body: ndjson(addSam),
			want: []string{"0 applied changed=true count=1"}, wantCounts: map[string]map[string]int64{"Stew": {"fire": 1}}},
		{name: "NoContentTypeIsJSON", body: jsonArray(addSam),
			want: []string{"0 applied changed=true count=1"}, wantCounts: map[string]map[string]int64{"Stew": {"fire": 1}}},
		{name: "JSONSuffix", contentType: "application/vnd.arina+json", body: jsonArray(addSam),
			want: []string{"0 applied changed=true count=1"}, wantCounts: map[string]map[string]int64{"Stew": {"fire": 1}}},
		{name: "JSONWhitespace", contentType: "application/json", body: "\n [ \n" + addSam + " ,\n\t" + addAnn + "\n]\n ",
			want: []string{"0 applied changed=true count=1", "1 applied changed=true count=2"}, wantCounts: map[string]map[string]int64{"Stew": {"fire": 2}}},
		{name: "EmptyArray", contentType: "application/json", body: "[]",
			want: []string{}, wantCounts: map[string]map[string]int64{"Stew": nil}},
		{name: "EmptyNDJSON", contentType: ndjsonType, body: "",
			want: []string{}, wantCounts: map[string]map[string]int64{"Stew": nil}},
		{name: "BlankNDJSON", contentType: ndjsonType, body: "\n \r\n\t\n",
			want: []string{}, wantCounts: map[string]map[string]int64{"Stew": nil}},
		// Items apply in order.
		{name: "AddThenRemove", contentType: "application/json", body: jsonArray(addSam, removeSam),
			want:       []string{"0 applied changed=true count=1", "1 applied changed=true count=0"},
			wantCounts: map[string]map[string]int64{"Stew": {"fire": 0}}},
		{name: "AddThenRemoveNDJSON", contentType: ndjsonType, body: ndjson(addSam, removeSam),
			want:       []string{"0 applied changed=true count=1", "1 applied changed=true count=0"},
			wantCounts: map[string]map[string]int64{"Stew": {"fire": 0}}},
		{name: "RemoveThenAdd", contentType: "application/json", body: jsonArray(removeSam, addSam),
			want:       []string{"0 applied changed=false count=0", "1 applied changed=true count=1"},
			wantCounts: map[string]map[string]int64{"Stew": {"fire": 1}}},
		{name: "AddRemoveAddRemoveAdd", contentType: ndjsonType, body: ndjson(addSam, removeSam, addSam, removeSam, addSam),
			want: []string{
				"0 applied changed=true count=1", "1 applied changed=true count=0", "2 applied changed=true count=1",
				"3 applied changed=true count=0", "4 applied changed=true count=1",
			},
			wantCounts: map[string]map[string]int64{"Stew": {"fire": 1}}},
		// Invalid items are rejected alone, with the codes of the single route, and never
		// applied; the valid ones around them are.
		{name: "MixedJSON", contentType: "application/json", body: jsonArray(mixed...),
			want: mixedWant, wantCounts: map[string]map[string]int64{"Stew": {"fire": 2}, strings.Repeat("s", ingest.MaxIDLen+1): nil}},
		{name: "MixedNDJSON", contentType: ndjsonType, body: ndjson(mixed...),
			want: mixedWant, wantCounts: map[string]map[string]int64{"Stew": {"fire": 2}, strings.Repeat("s", ingest.MaxIDLen+1): nil}},
		// A line that is not JSON is that item's error, not the request's.
		{name: "NDJSONBadLines", contentType: ndjsonType,
			body: ndjson(addSam, `{"action":`, `add Ann`, jsonArray(addAnn), addAnn+addAnn, addAnn+" }", addAnn),
			want: []string{
				"0 applied changed=true count=1",
				"1 rejected bad_json",
				"2 rejected bad_json",
				"3 rejected bad_json",
				"4 rejected bad_json",
				"5 rejected bad_json",
				"6 applied changed=true count=2",
			},
			wantCounts: map[string]map[string]int64{"Stew": {"fire": 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := MustStart(t, harnessOptions{})
			br, got := h.mustPostBatch(t, tt.contentType, tt.body)
			if !slices.Equal(got, tt.want) {
				t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for content, want := range tt.wantCounts {
				if got := h.storeCounts(t, content); !maps.Equal(got, want) || (got == nil) != (want == nil) {
					t.Errorf("store counts of %q = %v, want %v", content, got, want)
				}
			}
			h.checkBatchMetrics(t, br)
		})
	}
}

// TestServer_PostReactions_Body pins the whole answer, messages included: an item's
// error is what the single route would answer for it.
func TestServer_PostReactions_Body(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	h.mustPost(t, "add", "Stew", "fire", "Sam")
	h.mustPost(t, "add", "Stew", "fire", "Ann")
	bad := annWith("user_id", "A/B")
	_, err := ingest.DecodeJSON([]byte(bad), ingest.SourceHTTP)
	if err == nil {
		t.Fatalf("DecodeJSON(%s) = nil error, want invalid_id", bad)
	}
	r := h.do(t, http.MethodPost, reactionsPath, "application/json", jsonArray(eventJSON("add", "Stew", "fire", "Kim"), bad))
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
	checkJSON(t, r.body, `{"results":[`+
		`{"index":0,"status":"applied","changed":true,"count":3},`+
		`{"index":1,"status":"rejected","error":{"code":"invalid_id","message":`+mustJSON(err.Error())+`,"field":"user_id"}}`+
		`],"applied":1,"rejected":1}`)
	if got := h.metric(t, "arina_http_requests_total", "route", "POST "+reactionsPath, "code", "200"); got != 1 {
		t.Errorf("arina_http_requests_total{route=POST %s,code=200} = %v, want 1", reactionsPath, got)
	}

	// The route takes POST only.
	r = h.do(t, http.MethodGet, reactionsPath, "", "")
	checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := r.header.Get("Allow"); got != "POST" {
		t.Errorf("Allow = %q, want POST", got)
	}
}

// TestServer_PostReactions_Rejected: a request whose envelope is broken, of the wrong
// media type, or too large is refused whole: nothing in it is applied.
func TestServer_PostReactions_Rejected(t *testing.T) {
	t.Parallel()
	const ct = "application/json"
	ann := annWith()
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
	}{
		{name: "Object", contentType: ct, body: ann, wantStatus: 400, wantCode: "bad_json"},
		{name: "String", contentType: ct, body: `"add Ann"`, wantStatus: 400, wantCode: "bad_json"},
		{name: "Number", contentType: ct, body: `1`, wantStatus: 400, wantCode: "bad_json"},
		{name: "Null", contentType: ct, body: `null`, wantStatus: 400, wantCode: "bad_json"},
		{name: "NotJSON", contentType: ct, body: `add Ann`, wantStatus: 400, wantCode: "bad_json"},
		{name: "EmptyBody", contentType: ct, body: ``, wantStatus: 400, wantCode: "bad_json"},
		{name: "WhitespaceBody", contentType: ct, body: " \n", wantStatus: 400, wantCode: "bad_json"},
		{name: "NDJSONSentAsJSON", contentType: ct, body: ndjson(ann, ann), wantStatus: 400, wantCode: "bad_json"},
		{name: "Unterminated", contentType: ct, body: `[` + ann, wantStatus: 400, wantCode: "bad_json"},
		{name: "UnterminatedItem", contentType: ct, body: `[` + ann + `,{"action":`, wantStatus: 400, wantCode: "bad_json"},
		{name: "MalformedItem", contentType: ct, body: `[` + ann + `,{"action":}]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TrailingComma", contentType: ct, body: `[` + ann + `,]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "LeadingComma", contentType: ct, body: `[,` + ann + `]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "MissingComma", contentType: ct, body: `[` + ann + ` ` + ann + `]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TrailingData", contentType: ct, body: `[` + ann + `] x`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TwoArrays", contentType: ct, body: `[` + ann + `][]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "ExtraBracket", contentType: ct, body: `[` + ann + `]]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TextPlain", contentType: "text/plain", body: jsonArray(ann), wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "FormURLEncoded", contentType: "application/x-www-form-urlencoded", body: jsonArray(ann), wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "UnparsableMediaType", contentType: "application/", body: jsonArray(ann), wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "JSONBodyOneOverLimit", contentType: ct, body: padTo(jsonArray(ann), api.DefaultMaxBodyBytes+1), wantStatus: 413, wantCode: "payload_too_large"},
		{name: "NDJSONBodyOneOverLimit", contentType: ndjsonType, body: padTo(ndjson(ann), api.DefaultMaxBodyBytes+1), wantStatus: 413, wantCode: "payload_too_large"},
		{name: "NDJSONBodyFarOverLimit", contentType: ndjsonType, body: strings.Repeat(ndjson(ann), 4*api.DefaultMaxBodyBytes/len(ann)), wantStatus: 413, wantCode: "payload_too_large"},
		{name: "JSONTooManyItems", contentType: ct, body: jsonArray(manyItems(ingest.MaxBatchItems/2, ingest.MaxBatchItems+1)...), wantStatus: 413, wantCode: "too_many_items"},
		{name: "NDJSONTooManyItems", contentType: ndjsonType, body: ndjson(manyItems(ingest.MaxBatchItems/2, ingest.MaxBatchItems+1)...), wantStatus: 413, wantCode: "too_many_items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := MustStart(t, harnessOptions{})
			h.mustPost(t, "add", "Stew", "fire", "Sam")
			if len(tt.body) > api.DefaultMaxBodyBytes && tt.wantStatus != http.StatusRequestEntityTooLarge {
				t.Fatalf("test body is %d bytes, over the body limit", len(tt.body))
			}

			r := h.do(t, http.MethodPost, reactionsPath, tt.contentType, tt.body)
			checkError(t, r, tt.wantStatus, tt.wantCode)

			if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 1}; !maps.Equal(got, want) {
				t.Errorf("store counts of Stew = %v, want %v (the setup event only)", got, want)
			}
			if got := h.metric(t, "arina_events_applied_total"); got != 1 {
				t.Errorf("arina_events_applied_total = %v, want 1 (the setup event only)", got)
			}
			// The refused request counts as one rejected event, like a refused single POST.
			if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", tt.wantCode); got != 1 {
				t.Errorf("arina_events_rejected_total{source=http,reason=%s} = %v, want 1", tt.wantCode, got)
			}
			if got := h.metric(t, "arina_events_rejected_total"); got != 1 {
				t.Errorf("arina_events_rejected_total (all reasons) = %v, want 1", got)
			}
		})
	}
}

// TestServer_PostReactions_AtLimits: a batch of exactly the most items, or exactly the
// largest body, is taken.
func TestServer_PostReactions_AtLimits(t *testing.T) {
	t.Parallel()
	const n, valid = ingest.MaxBatchItems, ingest.MaxBatchItems / 2
	for _, tt := range []struct {
		name        string
		contentType string
		body        string
		wantApplied int
		wantFire    int64
	}{
		{"JSONMostItems", "application/json", jsonArray(manyItems(valid, n)...), valid, valid},
		{"NDJSONMostItems", ndjsonType, ndjson(manyItems(valid, n)...), valid, valid},
		{"JSONLargestBody", "application/json", padTo(jsonArray(annWith()), api.DefaultMaxBodyBytes), 1, 1},
		{"NDJSONLargestBody", ndjsonType, padTo(ndjson(annWith()), api.DefaultMaxBodyBytes), 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if len(tt.body) > api.DefaultMaxBodyBytes {
				t.Fatalf("test body is %d bytes, over the body limit", len(tt.body))
			}
			h := MustStart(t, harnessOptions{})
			br, _ := h.mustPostBatch(t, tt.contentType, tt.body)
			if br.Applied != tt.wantApplied {
				t.Errorf("applied = %d, want %d", br.Applied, tt.wantApplied)
			}
			if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": tt.wantFire}; !maps.Equal(got, want) {
				t.Errorf("store counts of Stew = %v, want %v", got, want)
			}
			h.checkBatchMetrics(t, br)
		})
	}
}

// TestServer_PostReactions_SharesWriterBatches: a batch is handed to the writer whole
// before its answer is awaited, so its items are applied together, not one per commit.
func TestServer_PostReactions_SharesWriterBatches(t *testing.T) {
	t.Parallel()
	const n = 50
	bs := newBlockingStore()
	h := MustStart(t, harnessOptions{wrap: func(s store.Store) store.Store { bs.Store = s; return bs }})
	t.Cleanup(bs.Release)

	// A holds the writer in Apply; the batch queues up behind it.
	a := make(chan error, 1)
	go func() {
		r, err := h.send(http.MethodPost, "/api/v1/reaction", "application/json", eventJSON("add", "Stew", "fire", "A"))
		if err == nil {
			_, err = decodeReaction(r)
		}
		a <- err
	}()
	select {
	case <-bs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never called Apply for A")
	}
	batch := h.sendAsync(reactionsPath, ndjsonType, ndjson(manyItems(n, n)...))
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got := h.w.QueueLen(); got != n {
			return fmt.Errorf("queue length = %d, want the whole batch, %d", got, n)
		}
		return nil
	})
	bs.Release()

	if err := <-a; err != nil {
		t.Fatalf("POST A: %v", err)
	}
	res := <-batch
	if res.err != nil {
		t.Fatalf("POST batch: %v", res.err)
	}
	br, _, err := decodeBatch(res.r)
	if err != nil {
		t.Fatal(err)
	}
	if br.Applied != n {
		t.Errorf("applied = %d, want %d", br.Applied, n)
	}
	for i, res := range br.Results {
		if res.Count == nil || *res.Count != int64(i+2) {
			t.Errorf("results[%d].count = %v, want %d (A, then the batch in order)", i, res.Count, i+2)
			break
		}
	}
	// Two writer batches in all: A's, then the whole HTTP batch.
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "arina_ingest_batch_size" {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		if hist.GetSampleCount() != 2 || hist.GetSampleSum() != n+1 {
			t.Errorf("writer batches: %d holding %v events, want 2 holding %d", hist.GetSampleCount(), hist.GetSampleSum(), n+1)
		}
	}
}

// TestServer_PostReactions_Overload: items that find the queue full are rejected with
// overload, and so is every valid item after them (items apply in order); when no valid
// item could be taken the answer is the single route's 503.
func TestServer_PostReactions_Overload(t *testing.T) {
	t.Parallel()
	const enqueueTimeout = 50 * time.Millisecond
	h, bs := MustStartBlocked(t, enqueueTimeout)
	postAsync := h.sendAsync

	// A is taken by the writer, which then blocks in Apply.
	a := postAsync("/api/v1/reaction", "application/json", eventJSON("add", "Stew", "fire", "A"))
	MustBlockInApply(t, bs, a)
	// In the first batch B fills the one-slot queue, C finds no room, D is not offered.
	first := postAsync(reactionsPath, ndjsonType, ndjson(
		eventJSON("add", "Stew", "fire", "B"),
		eventJSON("add", "Stew", "fire", "C"),
		annWith("user_id", ""),
		eventJSON("add", "Stew", "fire", "D"),
	))
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := h.w.QueueLen(); n != 1 {
			return fmt.Errorf("queue length = %d, want 1", n)
		}
		return nil
	})

	// The second batch finds the queue full for its first valid item: nothing valid is
	// taken, so it is a 503, after at least one enqueue timeout (not one per item).
	start := time.Now()
	r := h.do(t, http.MethodPost, reactionsPath, "application/json", jsonArray(
		annWith("action", "like"),
		eventJSON("add", "Stew", "fire", "E"),
		eventJSON("add", "Stew", "fire", "F"),
	))
	elapsed := time.Since(start)
	checkError(t, r, http.StatusServiceUnavailable, "overload")
	checkRetryAfter(t, r)
	if elapsed < enqueueTimeout {
		t.Errorf("503 after %v, want at least the enqueue timeout %v", elapsed, enqueueTimeout)
	}
	// C, D, E and F are all refused while the writer is still stuck.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", "overload"); got != 4 {
			return fmt.Errorf("arina_events_rejected_total{source=http,reason=overload} = %v, want 4", got)
		}
		return nil
	})

	bs.Release()
	res := <-a
	if res.err != nil {
		t.Fatalf("POST A: %v", res.err)
	}
	if _, err := decodeReaction(res.r); err != nil {
		t.Fatalf("POST A: %v", err)
	}
	res = <-first
	if res.err != nil {
		t.Fatalf("POST first batch: %v", res.err)
	}
	br, got, err := decodeBatch(res.r)
	if err != nil {
		t.Fatalf("first batch: %v", err)
	}
	want := []string{
		"0 applied changed=true count=2",
		"1 rejected overload",
		"2 rejected missing_field user_id",
		"3 rejected overload",
	}
	if !slices.Equal(got, want) {
		t.Errorf("first batch results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if m := br.Results[3].Error; m != nil && !strings.Contains(m.Message, "item 1") {
		t.Errorf("results[3] message = %q, want it to name item 1, refused before it", m.Message)
	}
	if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 2}; !maps.Equal(got, want) {
		t.Errorf("store counts of Stew = %v, want %v (A and B only)", got, want)
	}
	if got := h.metric(t, "arina_events_applied_total", "source", "http"); got != 2 {
		t.Errorf("arina_events_applied_total{source=http} = %v, want 2", got)
	}
	for reason, want := range map[string]float64{"overload": 4, "missing_field": 1, "invalid_action": 1} {
		if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", reason); got != want {
			t.Errorf("arina_events_rejected_total{source=http,reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if got := h.metric(t, "arina_events_received_total", "source", "http"); got != 8 {
		t.Errorf("arina_events_received_total{source=http} = %v, want 8 (A and 7 batch items)", got)
	}

	// Resending what was refused works once the writer is free.
	_, got = h.mustPostBatch(t, "application/json", jsonArray(
		eventJSON("add", "Stew", "fire", "C"), eventJSON("add", "Stew", "fire", "D"),
		eventJSON("add", "Stew", "fire", "E"), eventJSON("add", "Stew", "fire", "F"),
	))
	want = []string{
		"0 applied changed=true count=3", "1 applied changed=true count=4",
		"2 applied changed=true count=5", "3 applied changed=true count=6",
	}
	if !slices.Equal(got, want) {
		t.Errorf("resent batch results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestServer_PostReactions_ShuttingDown(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	h.mustPost(t, "add", "Stew", "fire", "Sam")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.w.Close(ctx); err != nil {
		t.Fatalf("closing writer: %v", err)
	}

	r := h.do(t, http.MethodPost, reactionsPath, ndjsonType, ndjson(annWith(), annWith("user_id", "Kim"), `{`))
	checkError(t, r, http.StatusServiceUnavailable, "shutting_down")
	checkRetryAfter(t, r)
	if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", "shutting_down"); got != 2 {
		t.Errorf("arina_events_rejected_total{source=http,reason=shutting_down} = %v, want 2", got)
	}
	if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", "bad_json"); got != 1 {
		t.Errorf("arina_events_rejected_total{source=http,reason=bad_json} = %v, want 1", got)
	}
	if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 1}; !maps.Equal(got, want) {
		t.Errorf("store counts of Stew = %v, want %v", got, want)
	}

	// A batch of invalid items only is still answered item by item.
	_, got := h.mustPostBatch(t, "application/json", jsonArray(`{}`))
	if want := []string{"0 rejected missing_field action"}; !slices.Equal(got, want) {
		t.Errorf("results = %v, want %v", got, want)
	}
}

// failingStore fails every Apply holding an op on the content fail.
type failingStore struct {
	store.Store
	fail string
}

func (f *failingStore) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	for _, op := range ops {
		if op.ContentID == f.fail {
			return errors.New("disk on fire")
		}
	}
	return f.Store.Apply(ctx, ops, out)
}

// TestServer_PostReactions_StoreError: an item whose writer batch fails to apply is
// rejected with store_error; when no valid item was applied the answer is a 503.
func TestServer_PostReactions_StoreError(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{
		ingest: ingest.Options{BatchSize: 1}, // one writer batch per item: only Doom's fails
		wrap:   func(s store.Store) store.Store { return &failingStore{Store: s, fail: "Doom"} },
	})
	_, got := h.mustPostBatch(t, "application/json", jsonArray(
		eventJSON("add", "Stew", "fire", "Sam"),
		eventJSON("add", "Doom", "fire", "Sam"),
		eventJSON("add", "Stew", "fire", "Ann"),
	))
	want := []string{"0 applied changed=true count=1", "1 rejected store_error", "2 applied changed=true count=2"}
	if !slices.Equal(got, want) {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r := h.do(t, http.MethodPost, reactionsPath, ndjsonType, ndjson(eventJSON("add", "Doom", "fire", "Ann"), `{}`))
	checkError(t, r, http.StatusServiceUnavailable, "store_error")
	checkRetryAfter(t, r)

	if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 2}; !maps.Equal(got, want) {
		t.Errorf("store counts of Stew = %v, want %v", got, want)
	}
	if got := h.storeCounts(t, "Doom"); got != nil {
		t.Errorf("store counts of Doom = %v, want none", got)
	}
	if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", "store_error"); got != 2 {
		t.Errorf("arina_events_rejected_total{source=http,reason=store_error} = %v, want 2", got)
	}
}

// TestServer_PostReactions_Concurrent: many clients post batches at once; every item is
// applied exactly once.
func TestServer_PostReactions_Concurrent(t *testing.T) {
	t.Parallel()
	const clients, batches, perBatch = 20, 5, 40
	reactions := []string{"fire", "yum"}
	h := MustStart(t, harnessOptions{})

	var (
		mu       sync.Mutex
		returned = map[string][]int64{} // reaction → counts returned for its items
	)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			reaction := reactions[c%len(reactions)]
			for b := range batches {
				items := make([]string, perBatch)
				for i := range items {
					items[i] = eventJSON("add", "Stew", reaction, fmt.Sprintf("u%d-%d-%d", c, b, i))
				}
				body, ct := jsonArray(items...), "application/json"
				if b%2 == 1 {
					body, ct = ndjson(items...), ndjsonType
				}
				r, err := h.send(http.MethodPost, reactionsPath, ct, body)
				if err != nil {
					t.Errorf("POST batch: %v", err)
					return
				}
				br, _, err := decodeBatch(r)
				if err != nil {
					t.Errorf("POST batch: %v", err)
					return
				}
				counts := make([]int64, 0, perBatch)
				for i, res := range br.Results {
					if res.Status != "applied" || !*res.Changed {
						t.Errorf("client %d batch %d item %d: status %s changed %v, want applied and changed", c, b, i, res.Status, res.Changed)
						return
					}
					if len(counts) > 0 && *res.Count <= counts[len(counts)-1] {
						t.Errorf("client %d batch %d: count %d after %d, want items applied in order", c, b, *res.Count, counts[len(counts)-1])
					}
					counts = append(counts, *res.Count)
				}
				mu.Lock()
				returned[reaction] = append(returned[reaction], counts...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	perReaction := clients * batches * perBatch / len(reactions)
	want := map[string]int64{}
	for _, reaction := range reactions {
		want[reaction] = int64(perReaction)
		// Each item applied once: the counts handed back are exactly 1..perReaction.
		got := slices.Sorted(slices.Values(returned[reaction]))
		if len(got) != perReaction {
			t.Errorf("%s: %d results, want %d", reaction, len(got), perReaction)
		}
		for i, n := range got {
			if n != int64(i+1) {
				t.Errorf("%s: counts returned are not 1..%d each once (at %d: %d)", reaction, perReaction, i, n)
				break
			}
		}
	}
	if got := h.storeCounts(t, "Stew"); !maps.Equal(got, want) {
		t.Errorf("store counts of Stew = %v, want %v", got, want)
	}
	if got, want := h.metric(t, "arina_events_applied_total", "source", "http"), float64(clients*batches*perBatch); got != want {
		t.Errorf("arina_events_applied_total{source=http} = %v, want %v", got, want)
	}
	if got := h.metric(t, "arina_events_rejected_total"); got != 0 {
		t.Errorf("arina_events_rejected_total = %v, want 0", got)
	}
}

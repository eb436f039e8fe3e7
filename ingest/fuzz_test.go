package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// The properties the fuzzers check, for every input:
//   - the parser never panics;
//   - a rejection is an *ingest.Error whose code is one the edge gives (never
//     CodeStoreError, which only the writer may give) and comes with the zero Event;
//   - an accepted event passes Validate, its ids obey CheckID, and its content and
//     reaction are the topic's;
//   - an accepted payload is UTF-8 and, when it is JSON, exactly one JSON value;
//   - an accepted event, said again in JSON, parses to the same event.

// edgeCodes are the codes the parsers may reject an event with.
var edgeCodes = map[ingest.Code]bool{
	ingest.CodeBadJSON:       true,
	ingest.CodeBadPayload:    true,
	ingest.CodeMissingField:  true,
	ingest.CodeInvalidField:  true,
	ingest.CodeInvalidID:     true,
	ingest.CodeInvalidAction: true,
	ingest.CodeIDMismatch:    true,
}

func checkRejected(t *testing.T, got ingest.Event, err error) {
	t.Helper()
	var e *ingest.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want an *ingest.Error", err, err)
	}
	if code := ingest.CodeOf(err); code != e.Code || !edgeCodes[code] {
		t.Fatalf("err %q has code %q (CodeOf: %q), want one of the edge's codes", err, e.Code, code)
	}
	if e.Msg == "" {
		t.Fatalf("err with code %q has no message", e.Code)
	}
	if got != (ingest.Event{}) {
		t.Fatalf("event %+v returned with error %v, want the zero Event", got, err)
	}
}

func checkAccepted(t *testing.T, got ingest.Event, src ingest.Source) {
	t.Helper()
	if err := got.Validate(); err != nil {
		t.Fatalf("accepted event %+v does not validate: %v", got, err)
	}
	for _, id := range []struct {
		field, id string
		max       int
	}{
		{"content_id", got.ContentID, ingest.MaxIDLen},
		{"reaction_type", got.ReactionType, ingest.MaxReactionLen},
		{"user_id", got.UserID, ingest.MaxIDLen},
	} {
		if err := ingest.CheckID(id.field, id.id, id.max); err != nil {
			t.Fatalf("accepted event has a bad %s: %v", id.field, err)
		}
		if !utf8.ValidString(id.id) || strings.ContainsAny(id.id, "/+#") {
			t.Fatalf("accepted event has %s %q", id.field, id.id)
		}
	}
	if got.Action != store.Add && got.Action != store.Remove {
		t.Fatalf("accepted event has action %d", got.Action)
	}
	if got.TS < 0 {
		t.Fatalf("accepted event has ts %d", got.TS)
	}
	if got.Source != src {
		t.Fatalf("accepted event has source %v, want %v", got.Source, src)
	}
}

// checkPayload checks what an accepted payload must be: UTF-8 and, if it is JSON, a
// single JSON value.
func checkPayload(t *testing.T, payload []byte) {
	t.Helper()
	p := bytes.TrimSpace(payload)
	if !utf8.Valid(p) {
		t.Fatalf("accepted a payload that is not UTF-8: %q", payload)
	}
	if p[0] == '{' && !json.Valid(p) {
		t.Fatalf("accepted a JSON payload that is not one JSON value: %q", payload)
	}
}

// wire says ev again in the seed's JSON shape.
func wire(t *testing.T, ev ingest.Event) []byte {
	t.Helper()
	m := map[string]any{
		"type":          "reaction",
		"action":        ev.Action.String(),
		"content_id":    ev.ContentID,
		"reaction_type": ev.ReactionType,
		"user_id":       ev.UserID,
	}
	if ev.TS != 0 {
		m["ts"] = ev.TS
	}
	if ev.EventID != "" {
		m["event_id"] = ev.EventID
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshaling %+v: %v", ev, err)
	}
	return data
}

func FuzzParsePayload(f *testing.F) {
	for _, tc := range payloadCases {
		content, reaction := tc.topic()
		f.Add(content, reaction, []byte(tc.payload))
	}
	f.Fuzz(func(t *testing.T, content, reaction string, payload []byte) {
		got, err := ingest.ParsePayload(content, reaction, payload, ingest.SourceMQTT)
		if err != nil {
			checkRejected(t, got, err)
			return
		}
		checkAccepted(t, got, ingest.SourceMQTT)
		if got.ContentID != content || got.ReactionType != reaction {
			t.Fatalf("ParsePayload(%q, %q, %q) names (%q, %q), want the topic's", content, reaction, payload, got.ContentID, got.ReactionType)
		}
		checkPayload(t, payload)
		if p := bytes.TrimSpace(payload); p[0] != '{' {
			verb, user, _ := bytes.Cut(p, []byte{' '})
			if string(verb) != got.Action.String() || string(bytes.TrimLeft(user, " ")) != got.UserID {
				t.Fatalf("text %q parsed to %s %q", payload, got.Action, got.UserID)
			}
		}
		again, err := ingest.ParsePayload(content, reaction, wire(t, got), ingest.SourceMQTT)
		if err != nil || again != got {
			t.Fatalf("%+v said again in JSON parsed to %+v, %v", got, again, err)
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.data))
	}
	for _, tc := range payloadCases {
		f.Add([]byte(tc.payload))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ingest.DecodeJSON(data, ingest.SourceHTTP)
		if err != nil {
			checkRejected(t, got, err)
			return
		}
		checkAccepted(t, got, ingest.SourceHTTP)
		checkPayload(t, data)
		again, err := ingest.DecodeJSON(wire(t, got), ingest.SourceHTTP)
		if err != nil || again != got {
			t.Fatalf("%+v said again in JSON decoded to %+v, %v", got, again, err)
		}
	})
}

func FuzzTopicEvent(f *testing.F) {
	for _, tc := range topicCases {
		f.Add(tc.prefix, tc.topic)
	}
	f.Fuzz(func(t *testing.T, prefix, topic string) {
		content, reaction, ok := ingest.TopicEvent(prefix, topic)

		// The model: the topic is the prefix, then exactly two more levels.
		rest, found := strings.CutPrefix(topic, prefix+"/")
		levels := strings.Split(rest, "/")
		wantOK := found && len(levels) == 2
		if ok != wantOK {
			t.Fatalf("TopicEvent(%q, %q) ok = %v, want %v", prefix, topic, ok, wantOK)
		}
		if !ok {
			if content != "" || reaction != "" {
				t.Fatalf("TopicEvent(%q, %q) = (%q, %q, false), want empty ids", prefix, topic, content, reaction)
			}
			return
		}
		if content != levels[0] || reaction != levels[1] || prefix+"/"+content+"/"+reaction != topic {
			t.Fatalf("TopicEvent(%q, %q) = (%q, %q), want (%q, %q)", prefix, topic, content, reaction, levels[0], levels[1])
		}
	})
}

package ingest

import (
	"testing"
	"unicode/utf8"
)

var fastCases = []string{
	`{"user_id":"u17","action":"add"}`,
	`{"user_id":"u17","action":"remove","ts":1733500000123}`,
	` { "user_id" : "sam" , "action" : "add" , "ts" : 0 } `,
	`{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire","event_id":"e1"}`,
	`{}`,
	`{"ts":-5}`,
	`{"ts":-0}`,
	"{\"user_id\":\"caf\u00e9\",\"action\":\"add\"}",
	// Left to encoding/json:
	`{"User_ID":"u1","action":"add"}`,
	`{"user_id":"u1","action":"add","extra":1}`,
	`{"user_id":"u\"1","action":"add"}`,
	`{"user_id":"u1","user_id":"u2","action":"add"}`,
	`{"user_id":null,"action":"add"}`,
	`{"ts":1.5}`, `{"ts":1e3}`, `{"ts":01}`, `{"ts":"1"}`, `{"ts":1234567890123456789}`,
	`{"user_id":"u1",}`, `{"user_id":"u1"} x`, `{"user_id":"u1"`, `{"user_id":1}`, `[1]`, `{"a`,
}

// TestDecodeFast checks the fast decoder against encoding/json on the cases it takes
// and that it leaves the others to it.
func TestDecodeFast(t *testing.T) {
	took := 0
	for _, c := range fastCases {
		if sameAsSlow(t, []byte(c)) {
			took++
		}
	}
	if took != 8 {
		t.Errorf("the fast decoder took %d of the cases, want the first 8", took)
	}
	data := []byte(fastCases[1])
	if n := testing.AllocsPerRun(100, func() { _, _ = decodeFast(data) }); n > 1 {
		t.Errorf("decodeFast allocates %v times per event, want at most 1 (the user id)", n)
	}
}

// sameAsSlow reports whether decodeFast takes data, failing t if what it decodes
// differs from encoding/json's result.
func sameAsSlow(t *testing.T, data []byte) bool {
	t.Helper()
	v, ok := decodeFast(data)
	if !ok {
		return false
	}
	fast := v.wire()
	slow, err := decodeSlow(data)
	if err != nil {
		t.Fatalf("%q: decodeFast took it, encoding/json says %v", data, err)
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return "=" + *p
	}
	i64 := func(p *int64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	for _, f := range []struct {
		name string
		a, b *string
	}{{"type", fast.Type, slow.Type}, {"action", fast.Action, slow.Action}, {"content_id", fast.ContentID, slow.ContentID},
		{"reaction_type", fast.ReactionType, slow.ReactionType}, {"user_id", fast.UserID, slow.UserID}, {"event_id", fast.EventID, slow.EventID}} {
		if str(f.a) != str(f.b) {
			t.Fatalf("%q: %s fast %s, encoding/json %s", data, f.name, str(f.a), str(f.b))
		}
	}
	if i64(fast.TS) != i64(slow.TS) {
		t.Fatalf("%q: ts fast %v, encoding/json %v", data, i64(fast.TS), i64(slow.TS))
	}
	return true
}

func FuzzDecodeFast(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if utf8.Valid(data) {
			sameAsSlow(t, data)
		}
	})
}

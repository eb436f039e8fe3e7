package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/arina-dev/arina/store"
)

// Source says where an event came from; it labels the ingest metrics.
type Source uint8

// The sources of events.
const (
	SourceMQTT Source = iota
	SourceHTTP
	SourceBridge // an upstream broker, through the bridge
	numSources
)

// String returns the metric label of the source.
func (s Source) String() string {
	switch s {
	case SourceMQTT:
		return "mqtt"
	case SourceHTTP:
		return "http"
	case SourceBridge:
		return "bridge"
	}
	return "unknown"
}

// Event is one add or remove of a user's reaction on a content, validated at the edge.
type Event struct {
	store.Op
	Source  Source
	EventID string // optional, from the payload
}

// DefaultMaxPayload is the default limit on the payload of one event from MQTT or the
// bridge, in bytes.
const DefaultMaxPayload = 4096

// MaxClockAhead is how far an event's ts may be ahead of this server's clock.
const MaxClockAhead = 5 * time.Minute

// Limits on identifiers, in bytes.
const (
	MaxIDLen       = 256
	MaxReactionLen = 64
)

// CheckID reports whether id is an acceptable identifier: valid UTF-8, 1 to max bytes,
// no control characters and none of the MQTT wildcard and separator characters / + #.
// field names the identifier in the returned error.
func CheckID(field, id string, max int) error {
	if id == "" {
		return &Error{Code: CodeMissingField, Field: field, Msg: "is required"}
	}
	if len(id) > max {
		return &Error{Code: CodeInvalidID, Field: field, Msg: fmt.Sprintf("is %d bytes long, the limit is %d", len(id), max)}
	}
	for i := 0; i < len(id); {
		c := id[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20 || c == 0x7f:
				return &Error{Code: CodeInvalidID, Field: field, Msg: fmt.Sprintf("contains control character %#x", c)}
			case c == '/' || c == '+' || c == '#':
				return &Error{Code: CodeInvalidID, Field: field, Msg: fmt.Sprintf("contains %q, which MQTT topics cannot carry", c)}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(id[i:])
		if r == utf8.RuneError && size == 1 {
			return &Error{Code: CodeInvalidID, Field: field, Msg: "is not valid UTF-8"}
		}
		if unicode.IsControl(r) {
			return &Error{Code: CodeInvalidID, Field: field, Msg: fmt.Sprintf("contains control character %U", r)}
		}
		if r == utf8.RuneError {
			// U+FFFD is what broken encodings (and JSON's lone surrogate escapes) decode to.
			return &Error{Code: CodeInvalidID, Field: field, Msg: "contains U+FFFD, the replacement character of a broken encoding"}
		}
		i += size
	}
	return nil
}

// Validate checks every identifier and the action of an event.
func (e *Event) Validate() error {
	if err := CheckID("content_id", e.ContentID, MaxIDLen); err != nil {
		return err
	}
	if err := CheckID("reaction_type", e.ReactionType, MaxReactionLen); err != nil {
		return err
	}
	if err := CheckID("user_id", e.UserID, MaxIDLen); err != nil {
		return err
	}
	if e.Action != store.Add && e.Action != store.Remove {
		return &Error{Code: CodeInvalidAction, Field: "action", Msg: "must be add or remove"}
	}
	if len(e.EventID) > MaxIDLen {
		return &Error{Code: CodeInvalidField, Field: "event_id", Msg: fmt.Sprintf("is longer than %d bytes", MaxIDLen)}
	}
	return nil
}

// wireEvent is the JSON shape of an event: the seed's (type, action, content_id, user_id,
// reaction_type) or the short MQTT one (user_id, action), with optional ts and event_id.
type wireEvent struct {
	Type         *string `json:"type"`
	Action       *string `json:"action"`
	ContentID    *string `json:"content_id"`
	ReactionType *string `json:"reaction_type"`
	UserID       *string `json:"user_id"`
	TS           *int64  `json:"ts"`
	EventID      *string `json:"event_id"`
}

func parseAction(s *string) (store.Action, error) {
	if s == nil {
		return 0, &Error{Code: CodeMissingField, Field: "action", Msg: "is required"}
	}
	switch *s {
	case "add":
		return store.Add, nil
	case "remove":
		return store.Remove, nil
	}
	return 0, &Error{Code: CodeInvalidAction, Field: "action", Msg: fmt.Sprintf("%q is not add or remove", truncate(*s))}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// decodeWire decodes an event's JSON. What the fast decoder takes is kept in buf, which
// the caller declares, and the wireEvent returned points into it.
func decodeWire(data []byte, buf *fastWire) (wireEvent, error) {
	if !utf8.Valid(data) {
		// encoding/json would replace the bad bytes with U+FFFD and accept a changed id.
		return wireEvent{}, &Error{Code: CodeBadJSON, Msg: "malformed JSON: not valid UTF-8"}
	}
	var w wireEvent
	var ok bool
	if *buf, ok = decodeFast(data); ok {
		w = buf.wire()
	} else {
		slow, err := decodeSlow(data)
		if err != nil {
			return wireEvent{}, err
		}
		w = *slow
	}
	if w.Type != nil && *w.Type != "reaction" {
		return wireEvent{}, &Error{Code: CodeInvalidField, Field: "type", Msg: fmt.Sprintf("%q is not \"reaction\"", truncate(*w.Type))}
	}
	if w.TS != nil && *w.TS < 0 {
		return wireEvent{}, &Error{Code: CodeInvalidField, Field: "ts", Msg: "must be unix milliseconds, not negative"}
	}
	if w.TS != nil {
		if ahead := time.Duration(*w.TS-time.Now().UnixMilli()) * time.Millisecond; ahead > MaxClockAhead {
			// The newest ts wins: an event from a clock far ahead would hold back every
			// later event of that user until the real time caught up.
			return wireEvent{}, &Error{Code: CodeInvalidField, Field: "ts", Msg: fmt.Sprintf(
				"is %v ahead of this server's clock (at most %v): fix the device's clock, or leave ts out", ahead.Round(time.Second), MaxClockAhead)}
		}
	}
	return w, nil
}

// decodeSlow decodes data with encoding/json: what decodeFast leaves to it.
func decodeSlow(data []byte) (*wireEvent, error) {
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &Error{Code: CodeInvalidField, Field: te.Field, Msg: fmt.Sprintf("must be a JSON %s, not %s", jsonKind(te.Type.String()), te.Value)}
		}
		return nil, &Error{Code: CodeBadJSON, Msg: "malformed JSON: " + err.Error()}
	}
	// Not dec.More: it reports false before a stray '}' or ']'.
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return nil, &Error{Code: CodeBadJSON, Msg: "unexpected data after the JSON object"}
	}
	return &w, nil
}

func jsonKind(goType string) string {
	switch goType {
	case "string", "*string":
		return "string"
	case "int64", "*int64":
		return "integer"
	}
	return goType
}

func (w *wireEvent) event(src Source) (Event, error) {
	a, err := parseAction(w.Action)
	if err != nil {
		return Event{}, err
	}
	ev := Event{Op: store.Op{Action: a}, Source: src}
	if w.ContentID != nil {
		ev.ContentID = *w.ContentID
	}
	if w.ReactionType != nil {
		ev.ReactionType = *w.ReactionType
	}
	if w.UserID != nil {
		ev.UserID = *w.UserID
	}
	if w.TS != nil {
		ev.TS = *w.TS
	}
	if w.EventID != nil {
		ev.EventID = *w.EventID
	}
	return ev, nil
}

// DecodeJSON decodes and validates one event in the seed's JSON shape:
// {"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}
// with optional "ts" (unix ms) and "event_id". "type" may be omitted.
func DecodeJSON(data []byte, src Source) (Event, error) {
	var buf fastWire
	w, err := decodeWire(data, &buf)
	if err != nil {
		return Event{}, err
	}
	ev, err := w.event(src)
	if err != nil {
		return Event{}, err
	}
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// ParsePayload turns the payload of a message published on the ingest topic of
// (contentID, reactionType) into a validated event. The payload is one of:
//
//   - JSON {"user_id":"Sam","action":"add"} with optional "ts" and "event_id";
//   - the seed's JSON, whose content_id and reaction_type must match the topic;
//   - text "add Sam" or "remove Sam".
func ParsePayload(contentID, reactionType string, payload []byte, src Source) (Event, error) {
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 {
		return Event{}, &Error{Code: CodeBadPayload, Msg: `empty payload; want JSON or "add <user>" / "remove <user>"`}
	}
	var ev Event
	if payload[0] == '{' {
		var buf fastWire
		w, err := decodeWire(payload, &buf)
		if err != nil {
			return Event{}, err
		}
		if w.ContentID != nil && *w.ContentID != contentID {
			return Event{}, &Error{Code: CodeIDMismatch, Field: "content_id", Msg: fmt.Sprintf("%q disagrees with the topic's %q", truncate(*w.ContentID), contentID)}
		}
		if w.ReactionType != nil && *w.ReactionType != reactionType {
			return Event{}, &Error{Code: CodeIDMismatch, Field: "reaction_type", Msg: fmt.Sprintf("%q disagrees with the topic's %q", truncate(*w.ReactionType), reactionType)}
		}
		if ev, err = w.event(src); err != nil {
			return Event{}, err
		}
	} else {
		verb, user, ok := bytes.Cut(payload, []byte{' '})
		if !ok {
			return Event{}, &Error{Code: CodeBadPayload, Msg: `want JSON or "add <user>" / "remove <user>"`}
		}
		switch string(verb) {
		case "add":
			ev.Action = store.Add
		case "remove":
			ev.Action = store.Remove
		default:
			return Event{}, &Error{Code: CodeInvalidAction, Field: "action", Msg: fmt.Sprintf("%q is not add or remove", truncate(string(verb)))}
		}
		ev.UserID = string(bytes.TrimLeft(user, " "))
		ev.Source = src
	}
	ev.ContentID = contentID
	ev.ReactionType = reactionType
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// TopicEvent maps a topic under prefix to the (content, reaction) it names. ok is false
// when the topic is not exactly <prefix>/<content_id>/<reaction_type>; such a topic is
// not an ingest topic. prefix has no leading or trailing slash.
func TopicEvent(prefix, topic string) (contentID, reactionType string, ok bool) {
	if len(topic) <= len(prefix) || topic[len(prefix)] != '/' || !strings.HasPrefix(topic, prefix) {
		return "", "", false
	}
	rest := topic[len(prefix)+1:]
	contentID, reactionType, ok = strings.Cut(rest, "/")
	if !ok || strings.IndexByte(reactionType, '/') >= 0 {
		return "", "", false
	}
	return contentID, reactionType, true
}

package ingest

// decodeFast decodes the common shape of an event's JSON without encoding/json, which
// took a fifth of the broker's CPU per event under a gateway's load (reflection, a
// Decoder and its buffer per event). It handles one object whose keys are exactly the
// wireEvent's (lowercase, each at most once), whose string values hold no escape and
// no control character, and whose "ts" is a plain integer of at most 18 digits. On
// anything else (other keys, which encoding/json would match case-insensitively or
// ignore, nulls, escapes, other value types, malformed JSON) it reports ok false and the caller decodes with encoding/json, so the outcome, and every
// error, is encoding/json's. data must be valid UTF-8 (decodeWire checks it first).
//
// It returns the values by value, with no pointer into itself, so that they stay on the
// caller's stack (wire makes the wireEvent pointing to them): a struct made here and
// returned by pointer escaped to the heap, an allocation per event.
func decodeFast(data []byte) (v fastWire, ok bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return v, false
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := scanString(data, i)
			if !ok {
				return v, false
			}
			i = skipWS(data, j)
			if i >= len(data) || data[i] != ':' {
				return v, false
			}
			i = skipWS(data, i+1)
			if string(key) == "ts" {
				if v.has&hasTS != 0 {
					return v, false
				}
				n, j, ok := scanInt(data, i)
				if !ok {
					return v, false
				}
				v.ts, i = n, j
				v.has |= hasTS
			} else {
				s, j, ok := scanString(data, i)
				if !ok {
					return v, false
				}
				i = j
				var dst *string
				var field uint8
				switch string(key) {
				case "type":
					dst, field = &v.typ, hasType
				case "action":
					dst, field = &v.action, hasAction
				case "content_id":
					dst, field = &v.content, hasContent
				case "reaction_type":
					dst, field = &v.reaction, hasReaction
				case "user_id":
					dst, field = &v.user, hasUser
				case "event_id":
					dst, field = &v.eventID, hasEventID
				default:
					return v, false
				}
				if v.has&field != 0 {
					return v, false // a repeated key: encoding/json keeps the last
				}
				switch {
				case field == hasAction && string(s) == "add":
					*dst = "add"
				case field == hasAction && string(s) == "remove":
					*dst = "remove"
				default:
					*dst = string(s)
				}
				v.has |= field
			}
			i = skipWS(data, i)
			if i >= len(data) {
				return v, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return v, false
			}
			i = skipWS(data, i+1)
		}
	}
	if skipWS(data, i) != len(data) {
		return v, false
	}
	return v, true
}

// fastWire is what decodeFast decodes: the values of the keys present (has).
type fastWire struct {
	typ, content, reaction, user, eventID string
	action                                string
	ts                                    int64
	has                                   uint8 // has* bits: the keys present
}

const (
	hasType uint8 = 1 << iota
	hasAction
	hasContent
	hasReaction
	hasUser
	hasEventID
	hasTS
)

// wire returns the wireEvent of v: pointers to v's values for the keys present.
func (v *fastWire) wire() (w wireEvent) {
	if v.has&hasType != 0 {
		w.Type = &v.typ
	}
	if v.has&hasAction != 0 {
		w.Action = &v.action
	}
	if v.has&hasContent != 0 {
		w.ContentID = &v.content
	}
	if v.has&hasReaction != 0 {
		w.ReactionType = &v.reaction
	}
	if v.has&hasUser != 0 {
		w.UserID = &v.user
	}
	if v.has&hasEventID != 0 {
		w.EventID = &v.eventID
	}
	if v.has&hasTS != 0 {
		w.TS = &v.ts
	}
	return w
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString reads the JSON string at b[i]: its contents and the index after it. ok is
// false if it is not a string or holds an escape or a control character.
func scanString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanInt reads a JSON integer (-?(0|[1-9][0-9]*), at most 18 digits, so no overflow)
// at b[i]; ok is false for anything else, fractions and exponents included.
func scanInt(b []byte, i int) (n int64, next int, ok bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		n = n*10 + int64(b[j]-'0')
		j++
	}
	if d := j - i; d == 0 || d > 18 || (d > 1 && b[i] == '0') {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, j, true
}

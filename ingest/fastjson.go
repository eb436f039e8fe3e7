package ingest

// decodeFast decodes the common shape of an event's JSON without encoding/json, which
// took a fifth of the broker's CPU per event under a gateway's load (reflection, a
// Decoder and its buffer per event). It handles one object whose keys are exactly the
// wireEvent's (lowercase, each at most once), whose string values hold no escape and
// no control character, and whose "ts" is a plain integer of at most 18 digits. On
// anything else (other keys, which encoding/json would match case-insensitively or
// ignore, nulls, escapes, other value types, malformed JSON) it reports ok false and the caller decodes with encoding/json, so the outcome, and every
// error, is encoding/json's. data must be valid UTF-8 (decodeWire checks it first).
func decodeFast(data []byte) (w *wireEvent, ok bool) {
	var v struct {
		w                                     wireEvent
		typ, content, reaction, user, eventID string
		action                                string
		ts                                    int64
	}
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := scanString(data, i)
			if !ok {
				return nil, false
			}
			i = skipWS(data, j)
			if i >= len(data) || data[i] != ':' {
				return nil, false
			}
			i = skipWS(data, i+1)
			if string(key) == "ts" {
				if v.w.TS != nil {
					return nil, false
				}
				n, j, ok := scanInt(data, i)
				if !ok {
					return nil, false
				}
				v.ts, v.w.TS, i = n, &v.ts, j
			} else {
				s, j, ok := scanString(data, i)
				if !ok {
					return nil, false
				}
				i = j
				var dst *string
				var field **string
				switch string(key) {
				case "type":
					dst, field = &v.typ, &v.w.Type
				case "action":
					dst, field = &v.action, &v.w.Action
				case "content_id":
					dst, field = &v.content, &v.w.ContentID
				case "reaction_type":
					dst, field = &v.reaction, &v.w.ReactionType
				case "user_id":
					dst, field = &v.user, &v.w.UserID
				case "event_id":
					dst, field = &v.eventID, &v.w.EventID
				default:
					return nil, false
				}
				if *field != nil {
					return nil, false // a repeated key: encoding/json keeps the last
				}
				switch {
				case field == &v.w.Action && string(s) == "add":
					*dst = "add"
				case field == &v.w.Action && string(s) == "remove":
					*dst = "remove"
				default:
					*dst = string(s)
				}
				*field = dst
			}
			i = skipWS(data, i)
			if i >= len(data) {
				return nil, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return nil, false
			}
			i = skipWS(data, i+1)
		}
	}
	if skipWS(data, i) != len(data) {
		return nil, false
	}
	return &v.w, true
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

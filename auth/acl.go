package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Access is what a client wants to do with a topic: Read (subscribe, receive) or Write
// (publish).
type Access uint8

// Accesses a rule can grant.
const (
	Read  Access = 1 << iota // subscribe to a filter, receive a message
	Write                    // publish a message
)

// String returns "read", "write", "readwrite" or a numeric form.
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Read | Write:
		return "readwrite"
	}
	return fmt.Sprintf("access(%d)", uint8(a))
}

// maxTopicLen is the longest topic or filter MQTT can carry (a two-byte length).
const maxTopicLen = 65535

// levelKind says what one level of a rule's filter is.
type levelKind uint8

const (
	levelLiteral  levelKind = iota // matches exactly its text
	levelPlus                      // '+': any one level
	levelHash                      // '#': any number of levels, the last level only
	levelTemplate                  // text with %u and %c placeholders
)

// part is a piece of a template level: literal text, or a placeholder ('u', 'c').
type part struct {
	lit         string
	placeholder byte // 0 for literal text
}

// level is one level of a compiled rule filter.
type level struct {
	kind  levelKind
	text  string // levelLiteral
	parts []part // levelTemplate
}

// rule is one compiled ACL entry.
type rule struct {
	topic  string // as written in the file
	levels []level
	grant  Access // accesses granted; 0 for a deny rule
	deny   bool
	usesU  bool // a level mentions %u
	usesC  bool // a level mentions %c
}

// parseAccess reads an ACL entry's access word.
func parseAccess(s string) (grant Access, deny bool, err error) {
	switch s {
	case "read":
		return Read, false, nil
	case "write":
		return Write, false, nil
	case "readwrite":
		return Read | Write, false, nil
	case "deny":
		return 0, true, nil
	case "":
		return 0, false, errors.New("access is required (read, write, readwrite or deny)")
	}
	return 0, false, fmt.Errorf("access %q is not one of read, write, readwrite, deny", s)
}

// compileFilter parses a rule's topic: a valid MQTT topic filter whose levels may hold
// %u and %c placeholders (a '%' must start one of them).
func compileFilter(topic string) ([]level, bool, bool, error) {
	switch {
	case topic == "":
		return nil, false, false, errors.New("topic is required")
	case len(topic) > maxTopicLen:
		return nil, false, false, fmt.Errorf("topic is %d bytes, over the MQTT limit of %d", len(topic), maxTopicLen)
	case !utf8.ValidString(topic):
		return nil, false, false, errors.New("topic is not valid UTF-8")
	case strings.ContainsRune(topic, 0):
		return nil, false, false, errors.New("topic contains NUL")
	case isShared(topic):
		return nil, false, false, errors.New("topic is a $share filter; write the rule for the topics shared subscriptions read")
	}
	var levels []level
	var usesU, usesC bool
	n := strings.Count(topic, "/") + 1
	i := 0
	for text := range strings.SplitSeq(topic, "/") {
		i++
		switch {
		case text == "#":
			if i != n {
				return nil, false, false, errors.New("'#' must be the last level")
			}
			levels = append(levels, level{kind: levelHash})
			continue
		case text == "+":
			levels = append(levels, level{kind: levelPlus})
			continue
		case strings.ContainsAny(text, "+#"):
			return nil, false, false, fmt.Errorf("level %q: '+' and '#' must fill a whole level", text)
		case !strings.Contains(text, "%"):
			levels = append(levels, level{kind: levelLiteral, text: text})
			continue
		}
		var parts []part
		rest := text
		for rest != "" {
			j := strings.IndexByte(rest, '%')
			if j < 0 {
				parts = append(parts, part{lit: rest})
				break
			}
			if j > 0 {
				parts = append(parts, part{lit: rest[:j]})
			}
			if j+1 >= len(rest) || (rest[j+1] != 'u' && rest[j+1] != 'c') {
				return nil, false, false, fmt.Errorf("level %q: '%%' must start %%u (username) or %%c (client id)", text)
			}
			ph := rest[j+1]
			usesU = usesU || ph == 'u'
			usesC = usesC || ph == 'c'
			parts = append(parts, part{placeholder: ph})
			rest = rest[j+2:]
		}
		levels = append(levels, level{kind: levelTemplate, parts: parts})
	}
	return levels, usesU, usesC, nil
}

// isShared reports whether filter starts with the $share/ prefix (any case, as mochi).
func isShared(filter string) bool {
	return len(filter) >= 7 && strings.EqualFold(filter[:7], "$share/")
}

// unsafeValue reports whether a username or client id may not stand in for %u or %c:
// it could add levels or wildcards to a rule, reach $ topics, or vanish.
func unsafeValue(v string) bool {
	return v == "" || v[0] == '$' || strings.ContainsAny(v, "+#/\x00")
}

// validTopic reports whether topic is something a client can publish to (filter
// false) or subscribe to (filter true): non-empty, valid UTF-8 without NUL, and for a
// filter, wildcards that fill whole levels with '#' last.
func validTopic(topic string, filter bool) bool {
	if topic == "" || len(topic) > maxTopicLen || !utf8.ValidString(topic) || strings.ContainsRune(topic, 0) {
		return false
	}
	if !filter {
		return !strings.ContainsAny(topic, "+#")
	}
	rest := topic
	for {
		lv, tail, more := strings.Cut(rest, "/")
		if lv == "#" && more {
			return false
		}
		if lv != "#" && lv != "+" && strings.ContainsAny(lv, "+#") {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// covers reports whether the rule matches every topic filter f can match (f is a
// valid filter; a plain topic is the filter matching only itself), with username u
// and client id c for the placeholders (which the caller checked are safe).
func (r *rule) covers(f, u, c string) bool {
	rest, more := f, true // more: rest holds at least one level
	for i, lv := range r.levels {
		if lv.kind == levelHash {
			// '#' matches its parent and everything below, but a leading wildcard
			// does not match $ topics (MQTT 4.7.2).
			return i != 0 || !strings.HasPrefix(f, "$")
		}
		if !more {
			return false
		}
		var fl string
		fl, rest, more = strings.Cut(rest, "/")
		switch lv.kind {
		case levelPlus:
			switch fl {
			case "#":
				// A rule "+/#" covers the filter "#" (every topic has a first level,
				// and neither matches $ topics). Deeper down, f's '#' also matches
				// its parent level, which "+/#" does not; nothing but '#' covers it.
				return i == 0 && len(r.levels) == 2 && r.levels[1].kind == levelHash
			case "+":
			default:
				if i == 0 && strings.HasPrefix(fl, "$") {
					return false
				}
			}
		case levelLiteral:
			if fl != lv.text {
				return false
			}
		case levelTemplate:
			if !matchTemplate(fl, lv.parts, u, c) {
				return false
			}
		}
	}
	return !more
}

// matchTemplate reports whether the topic level s equals the template with %u and %c
// replaced by u and c. A wildcard level ('+', '#') never equals a template.
func matchTemplate(s string, parts []part, u, c string) bool {
	for _, p := range parts {
		want := p.lit
		switch p.placeholder {
		case 'u':
			want = u
		case 'c':
			want = c
		}
		var ok bool
		if s, ok = strings.CutPrefix(s, want); !ok {
			return false
		}
	}
	return s == ""
}

// Allow reports whether the client with this username and client id may have access
// (Read or Write) to topic. For Read, topic may be a filter (a SUBSCRIBE); see the
// package doc for what a rule matching a filter means. A matching deny rule wins, else
// a matching rule granting the access allows, else access is denied. Unknown users,
// invalid topics and any access other than exactly Read or Write are denied.
func (us *Users) Allow(username, clientID, topic string, access Access) bool {
	if us == nil || (access != Read && access != Write) || !validTopic(topic, access == Read) {
		return false
	}
	u := us.byName[username]
	if u == nil {
		return false
	}
	badU, badC := unsafeValue(username), unsafeValue(clientID)
	granted := false
	for i := range u.rules {
		r := &u.rules[i]
		if (r.usesU && badU) || (r.usesC && badC) {
			if r.deny {
				return false // fail closed: the rule cannot say what it would have denied
			}
			continue
		}
		if !r.deny && r.grant&access == 0 {
			continue // cannot change the answer: skip the match
		}
		if !r.covers(topic, username, clientID) {
			continue
		}
		if r.deny {
			return false
		}
		granted = true
	}
	return granted
}

package redis

import (
	"encoding/base64"
	"strings"
)

// Key kinds: the letter after a content's hash tag (see "Key layout" in docs/SCALE-OUT.md).
const (
	kindCounts  = "n" // hash: reaction -> count
	kindVersion = "v" // string: the content's change counter
	kindMembers = "m" // sorted set, all scores 0: the users holding a reaction
	kindExpiry  = "x" // hash: user -> expiry (unix ms), members with an expiry only
	kindTS      = "t" // hash: user -> remembered TS, members and tombstones
	kindTomb    = "d" // sorted set: user -> remembered TS (score), tombstones only
)

// tagEncoding turns a content id into a hash tag: unpadded base64url has neither '{'
// nor '}' and is never empty for a non-empty id, so the whole content id (whatever it
// holds) is the tag and no two contents share one.
var tagEncoding = base64.RawURLEncoding

// keys builds and parses the store's key names under one prefix.
type keys struct {
	prefix string
}

// tag returns the hash tag of a content, braces included.
func (k keys) tag(contentID string) string {
	return "{" + tagEncoding.EncodeToString([]byte(contentID)) + "}"
}

// content returns the key of one of a content's values, whose kind takes no reaction.
func (k keys) content(tag, kind string) string {
	return k.prefix + tag + ":" + kind
}

// set returns the key of one of a (content, reaction)'s values.
func (k keys) set(tag, kind, reactionType string) string {
	return k.prefix + tag + ":" + kind + ":" + reactionType
}

// user returns the key of a user's membership index.
func (k keys) user(userID string) string {
	return k.prefix + "u:" + userID
}

// contents returns the key of the index of all content ids.
func (k keys) contents() string {
	return k.prefix + "contents"
}

// channel returns the pub/sub channel of the change feed.
func (k keys) channel() string {
	return k.prefix + "changes"
}

// setPattern returns a SCAN MATCH pattern for every (content, reaction) key of a kind.
// It may match more than that (a '*' also matches '}' and ':'): parseSet has the last word.
func (k keys) setPattern(kind string) string {
	return globEscape(k.prefix) + "{*}:" + kind + ":*"
}

// userPattern returns a SCAN MATCH pattern for the user indexes.
func (k keys) userPattern() string {
	return globEscape(k.prefix) + "u:*"
}

// parseSet splits a key made by set(tag(c), kind, r) into c and r; ok is false for
// any other key.
func (k keys) parseSet(key, kind string) (contentID, reactionType string, ok bool) {
	rest, found := strings.CutPrefix(key, k.prefix+"{")
	if !found {
		return "", "", false
	}
	enc, rest, found := strings.Cut(rest, "}")
	if !found {
		return "", "", false
	}
	reactionType, found = strings.CutPrefix(rest, ":"+kind+":")
	if !found {
		return "", "", false
	}
	raw, err := tagEncoding.DecodeString(enc)
	if err != nil || len(raw) == 0 {
		return "", "", false
	}
	return string(raw), reactionType, true
}

// globEscape escapes the characters that SCAN MATCH patterns treat specially.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// membershipField is the field of a user index naming one (content, reaction);
// identifiers hold no NUL (Apply refuses them), so the split is unambiguous, and the
// fields sort by content, then reaction.
func membershipField(contentID, reactionType string) string {
	return contentID + "\x00" + reactionType
}

// prefixEnd returns the smallest string greater than every string starting with
// prefix, and false when there is none (empty prefix or only 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

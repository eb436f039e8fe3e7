package broker

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/arina-dev/arina/store"
)

// TestCountsJSON_MatchesEncodingJSON: the count JSON built by hand is byte for byte
// what encoding/json makes of countsMessage, for ids with characters it escapes (HTML
// characters, quotes, control characters, U+2028/9, invalid UTF-8) and for any order
// of reactions the store returns.
func TestCountsJSON_MatchesEncodingJSON(t *testing.T) {
	pieces := []string{"a", "Stew", "é", "火", "<", ">", "&", `"`, `\`, "\n", "\t", "\b", "\f", "\r", "\x01", "\x1f", "\x7f",
		"\u2028", "\u2029", "\xff", "\xe2\x80", "😀", " ", "/", "_", "\u00a0", "\ufeff"}
	rng := rand.New(rand.NewPCG(1, 2))
	id := func() string {
		var sb strings.Builder
		for range rng.IntN(6) + 1 {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	for range 5000 {
		content := id()
		var rc []store.ReactionCount
		msg := countsMessage{ContentID: content, ReactionCount: map[string]int64{}}
		for range rng.IntN(5) {
			r := id()
			if _, dup := msg.ReactionCount[r]; dup {
				continue
			}
			n := rng.Int64N(1<<40) - 10
			rc = append(rc, store.ReactionCount{ReactionType: r, Count: n})
			msg.ReactionCount[r] = n
		}
		want, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) })
		if got := appendCountsJSON(nil, content, rc); !bytes.Equal(got, want) {
			t.Fatalf("content %q, counts %v:\n got %s\nwant %s", content, rc, got, want)
		}
	}
}

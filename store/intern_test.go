package store

import (
	"fmt"
	"strings"
	"testing"
)

// TestInterner numbers ids densely in first-seen order, gives each back unchanged
// after the table has grown and chunks have filled, and finds an id the same from a
// string and from bytes.
func TestInterner(t *testing.T) {
	var in interner
	if _, ok := in.lookup("nobody"); ok {
		t.Fatal("an empty interner found an id")
	}
	var ids []string
	for i := range 50_000 {
		// Lengths up to 300 bytes so that ids land on chunk boundaries too.
		ids = append(ids, fmt.Sprintf("user-%d-%s", i, strings.Repeat("x", i%300)))
	}
	// Longer than a chunk, each in a chunk of its own: name steps over them from a
	// sampled position (internSample) to the ids after.
	ids = append(ids, strings.Repeat("y", internChunk+1), "after-y")
	ids = append(ids, strings.Repeat("z", 3*internChunk), "after-z1", "after-z2")
	if (len(ids)-3)%internSample == 0 {
		t.Fatal("the second long id must not be a sampled one")
	}
	for i, id := range ids {
		var uid uint32
		if i%2 == 0 {
			uid = in.intern(id)
		} else {
			uid = in.internBytes([]byte(id))
		}
		if uid != uint32(i) {
			t.Fatalf("id %d numbered %d", i, uid)
		}
	}
	buf := []byte("scratch")
	for i, id := range ids {
		if got := in.name(uint32(i)); got != id {
			t.Fatalf("name(%d) = %.20q, want %.20q", i, got, id)
		}
		if uid, ok := in.lookup(id); !ok || uid != uint32(i) {
			t.Fatalf("lookup(%.20q) = %d, %v", id, uid, ok)
		}
		buf = append(buf[:0], id...)
		if uid := in.internBytes(buf); uid != uint32(i) {
			t.Fatalf("internBytes(%.20q) = %d, want the existing %d", id, uid, i)
		}
	}
	buf[0] ^= 0xff // the interner copied the bytes: changing ours changes nothing
	if got := in.name(uint32(len(ids) - 1)); got != ids[len(ids)-1] {
		t.Fatal("an interned id changed with the caller's buffer")
	}
	for _, id := range []string{"user-", "user-1-", "", "user-50000-"} {
		if uid, ok := in.lookup(id); ok {
			t.Fatalf("lookup(%q) found %d", id, uid)
		}
	}
}

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

// TestInterner_Size checks what the interner holds per user (issue 16): with 8-byte
// ids, at most 18 bytes a user whatever the table's fill (the id, its length, a
// position in refs per internSample users, and 4-byte slots at 1/2 to 3/4 full).
func TestInterner_Size(t *testing.T) {
	var in interner
	for i := range 300_000 {
		in.intern(fmt.Sprintf("u%07d", i))
		if n := i + 1; n%50_000 == 0 {
			size := 4*cap(in.slots) + 8*cap(in.refs)
			for _, c := range in.chunks {
				size += cap(c)
			}
			// The last chunk is partly filled: count it as full, less one chunk.
			if per := float64(size-internChunk) / float64(n); per > 18 {
				t.Fatalf("%d users take %.1f bytes each, want at most 18", n, per)
			}
		}
	}
	for i := range 300_000 {
		if uid, ok := in.lookup(fmt.Sprintf("u%07d", i)); !ok || uid != uint32(i) {
			t.Fatalf("lookup(u%07d) = %d, %v", i, uid, ok)
		}
	}
}

package store

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// internChunk is the size of the blocks interned ids are packed in.
const internChunk = 64 << 10

// interner numbers user ids densely from 0, so that sets hold 4-byte integers, and
// gives the id back from its number.
//
// A Go map[string]uint32 plus a []string of names costs ~70 bytes per user: a string
// allocation, a header in the slice, a 24-byte map slot at a load of 44-88%. Here every
// id is packed once in 64 KiB chunks as an entry [number uint32][length uvarint][bytes],
// in number order, never moved or written again, and the index is an open-addressing
// table of 8-byte slots, each the entry's position and 24 bits of the id's hash, at
// most 3/4 full and grown by half (positions have 40 bits: 2^24 chunks, 1 TiB of ids).
// Finding an id reads its slot and then its entry, which holds the bytes to compare and
// the number together: two cache misses on a large index, as for a Go map. Going from
// a number back to the id (name, for listings) starts at the position kept for every
// internSample-th number and steps over at most internSample-1 entries. About 30 bytes
// per user in all, the id's own bytes included.
//
// The zero value is empty and ready to use. An interner is not safe for concurrent
// use; Memory guards it with its lock.
type interner struct {
	seed   maphash.Seed
	chunks [][]byte // entries; each chunk is appended to within its capacity only
	refs   []uint64 // by number/internSample: the position of the entry, chunk<<16 | offset
	slots  []uint64 // tag<<40 | (ref+1), 0: empty; linear probing
	used   int      // slots in use: the ids numbered
	sink   uint64   // internBatch's reads ahead add up here, so that they are made
}

const (
	internRefBits = 40
	internRefMask = 1<<internRefBits - 1
	internSample  = 8 // refs keeps the position of every internSample-th entry
)

// home returns the slot a hash starts probing at: its low 32 bits scaled to the table
// (the tag is the top 24).
func (in *interner) home(h uint64) int {
	return int(uint64(uint32(h)) * uint64(len(in.slots)) >> 32)
}

// next returns the entry after the one at ref: the next in its chunk, or the first of
// the next chunk.
func (in *interner) next(ref uint64) uint64 {
	c := in.chunks[ref>>16]
	off := int(ref & 0xffff)
	n, w := binary.Uvarint(c[off+4:])
	if end := off + 4 + w + int(n); end < len(c) {
		return ref&^0xffff | uint64(end)
	}
	return (ref>>16 + 1) << 16
}

// entry returns the number and bytes of the entry at ref.
func (in *interner) entry(ref uint64) (uint32, []byte) {
	c := in.chunks[ref>>16]
	off := int(ref & 0xffff)
	uid := binary.LittleEndian.Uint32(c[off:])
	n, w := binary.Uvarint(c[off+4:])
	start := off + 4 + w
	return uid, c[start : start+int(n) : start+int(n)]
}

// name returns the id numbered uid. The string points into the chunk: no copy.
func (in *interner) name(uid uint32) string {
	ref := in.refs[uid/internSample]
	for range uid % internSample {
		ref = in.next(ref)
	}
	_, b := in.entry(ref)
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// find returns the number of the id with the given hash and bytes, or the slot where it
// would go.
func (in *interner) find(h uint64, id []byte) (uid uint32, slot int, ok bool) {
	tag := h >> internRefBits // the top 24 bits; the index uses the low 32
	for i := in.home(h); ; i++ {
		if i == len(in.slots) {
			i = 0
		}
		s := in.slots[i]
		if s == 0 {
			return 0, i, false
		}
		if s>>internRefBits == tag {
			if uid, b := in.entry(s&internRefMask - 1); string(b) == string(id) {
				return uid, i, true
			}
		}
	}
}

// lookup returns the number of id, if it has one.
func (in *interner) lookup(id string) (uint32, bool) {
	return in.lookupBytes(unsafe.Slice(unsafe.StringData(id), len(id)))
}

// lookupBytes is lookup for an id held in a byte slice.
func (in *interner) lookupBytes(id []byte) (uint32, bool) {
	if len(in.slots) == 0 {
		return 0, false
	}
	uid, _, ok := in.find(maphash.Bytes(in.seed, id), id)
	return uid, ok
}

// intern returns the number of id, giving it the next one if it has none.
func (in *interner) intern(id string) uint32 {
	return in.internBytes(unsafe.Slice(unsafe.StringData(id), len(id)))
}

// internBytes is intern for an id held in a byte slice; it copies the bytes.
func (in *interner) internBytes(id []byte) uint32 {
	if 4*(in.used+1) > 3*len(in.slots) {
		in.grow()
	}
	h := maphash.Bytes(in.seed, id)
	uid, slot, ok := in.find(h, id)
	if ok {
		return uid
	}
	uid = uint32(in.used)
	ref := in.pack(uid, id)
	if uid%internSample == 0 {
		in.refs = append(in.refs, ref)
	}
	in.slots[slot] = h>>internRefBits<<internRefBits | (ref + 1)
	in.used++
	return uid
}

// pack appends the entry of id numbered uid and returns its position.
func (in *interner) pack(uid uint32, id []byte) uint64 {
	var n [binary.MaxVarintLen64]byte
	size := 4 + binary.PutUvarint(n[:], uint64(len(id))) + len(id)
	last := len(in.chunks) - 1
	if last < 0 || size > cap(in.chunks[last])-len(in.chunks[last]) {
		// A new chunk; an id longer than a chunk gets one of its own, at offset 0.
		in.chunks = append(in.chunks, make([]byte, 0, max(internChunk, size)))
		last++
	}
	c := in.chunks[last]
	off := len(c)
	c = binary.LittleEndian.AppendUint32(c, uid)
	c = binary.AppendUvarint(c, uint64(len(id)))
	in.chunks[last] = append(c, id...)
	return uint64(last)<<16 | uint64(off)
}

// grow makes the table half as big again (3/4 full before, 1/2 after: 12 bytes a user
// on average, where doubling would average 16) and places every entry again.
func (in *interner) grow() {
	if in.seed == (maphash.Seed{}) {
		in.seed = maphash.MakeSeed()
	}
	in.slots = make([]uint64, max(1024, len(in.slots)+len(in.slots)/2))
	ref := uint64(0)
	for range in.used {
		_, b := in.entry(ref)
		h := maphash.Bytes(in.seed, b)
		i := in.home(h)
		for in.slots[i] != 0 {
			if i++; i == len(in.slots) {
				i = 0
			}
		}
		in.slots[i] = h>>internRefBits<<internRefBits | (ref + 1)
		ref = in.next(ref)
	}
}

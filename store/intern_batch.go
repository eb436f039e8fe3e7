package store

import "hash/maphash"

// internBatch interns every id of ids into uids (uids[i] for ids[i]), as internBytes
// would one after the other, in the same order, so the numbers are the same.
//
// Interning is two cache misses per id on a large index (its slot, then its entry),
// and interning one id after the other waits for each miss in turn: recovery of 10M
// memberships over 1M users spent two thirds of its time there. The batch first
// hashes every id and reads their slots, then reads the entries the slots point to,
// loads that do not depend on one another and so are in flight together; then it
// interns each id, which now finds what it reads in the cache.
func (in *interner) internBatch(ids [][]byte, uids []uint32) {
	for 4*(in.used+len(ids)) > 3*len(in.slots) {
		in.grow()
	}
	var hs [internBatchMax]uint64
	var sink uint64
	for i, id := range ids {
		h := maphash.Bytes(in.seed, id)
		hs[i] = h
		sink += in.slots[in.home(h)]
	}
	for i := range ids {
		h := hs[i]
		if s := in.slots[in.home(h)]; s != 0 && s>>internRefBits == h>>internRefBits {
			ref := s&internRefMask - 1
			sink += uint64(in.chunks[ref>>16][ref&0xffff])
		}
	}
	in.sink += sink
	for i, id := range ids {
		h := hs[i]
		uid, slot, ok := in.find(h, id)
		if !ok {
			uid = uint32(in.used)
			ref := in.pack(uid, id)
			if uid%internSample == 0 {
				in.refs = append(in.refs, ref)
			}
			in.slots[slot] = h>>internRefBits<<internRefBits | (ref + 1)
			in.used++
		}
		uids[i] = uid
	}
}

// internBatchMax is the most ids internBatch takes at once.
const internBatchMax = 256

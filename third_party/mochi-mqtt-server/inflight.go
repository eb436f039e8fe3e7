// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Inflight is a map of InflightMessage keyed on packet id.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]packets.Packet // internal contains the inflight packets
	queued              immediateQueue            // Arina patch: the packets with Expiry < 0, in the order they were queued
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	sendQuota           int32                     // remaining outbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]packets.Packet{},
	}
}

// Set adds or updates an inflight packet by packet id.
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[m.PacketID]
	i.internal[m.PacketID] = m
	i.queued.set(m)
	return !ok
}

// Get returns an inflight packet by packet id.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.internal[id]; ok {
		return m, true
	}

	return packets.Packet{}, false
}

// Type returns the packet type of the inflight packet id, if there is one (Arina
// patch 27: processPublish called Get, which copies the whole packet out, or an empty
// one, for every publish it receives).
func (i *Inflight) Type(id uint16) (byte, bool) {
	i.RLock()
	defer i.RUnlock()
	if _, ok := i.internal[id]; !ok { // no copy of the packet
		return 0, false
	}
	return i.internal[id].FixedHeader.Type, true
}

// Len returns the size of the inflight messages map.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal)
}

// Clone returns a new instance of Inflight with the same message data.
// This is used when transferring inflights from a taken-over session.
func (i *Inflight) Clone() *Inflight {
	c := NewInflights()
	i.RLock()
	defer i.RUnlock()
	for k, v := range i.internal {
		c.internal[k] = v
	}
	c.queued = i.queued.clone()
	return c
}

// GetAll returns all the inflight messages.
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()

	m := []packets.Packet{}
	for _, v := range i.internal {
		if !immediate || (immediate && v.Expiry < 0) {
			m = append(m, v)
		}
	}

	sort.Slice(m, func(i, j int) bool {
		return uint16(m[i].Created) < uint16(m[j].Created)
	})

	return m
}

// NextImmediate returns the next inflight packet which is indicated to be sent immediately.
// This typically occurs when the quota has been exhausted, and we need to wait until new quota
// is free to continue sending.
//
// Arina patch: it runs after every packet that a client with messages in flight sends,
// and it copied and sorted every in-flight packet (GetAll) to find the first one
// waiting for quota: O(n log n) copies of whole packets per PUBACK, so a subscriber
// with thousands in flight left a backlog of PUBACKs that took the broker seconds to
// work through after the client had gone. The sort was by the creation second and not
// stable, so packets queued within one second could also leave out of order. Now the
// packets waiting for quota are kept in the order they were queued (immediateQueue):
// O(1) when none waits, amortised O(1) otherwise.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	i.RLock()
	none := len(i.queued.seq) == 0
	i.RUnlock()
	if none {
		return packets.Packet{}, false
	}

	i.Lock()
	defer i.Unlock()
	id, ok := i.queued.first()
	if !ok {
		return packets.Packet{}, false
	}
	return i.internal[id], true
}

// immediateQueue holds, in the order they were queued, the ids of the in-flight packets
// waiting for send quota (Expiry < 0). Arina patch, see NextImmediate. An id leaves
// the queue lazily: seq maps each waiting id to the number it was queued under, and an
// entry of order whose number is not its id's current one is skipped and dropped.
type immediateQueue struct {
	seq   map[uint16]uint64 // waiting packet id -> its number in order
	order []queuedID        // oldest first, from head
	head  int
	next  uint64 // the number of the next packet queued
}

type queuedID struct {
	id  uint16
	seq uint64
}

// set records that packet m is in flight: waiting for quota if m.Expiry < 0, and
// otherwise not (any earlier wait of its id ends).
func (q *immediateQueue) set(m packets.Packet) {
	if m.Expiry >= 0 {
		q.remove(m.PacketID)
		return
	}
	if _, waiting := q.seq[m.PacketID]; waiting {
		return // updated in place: it keeps its turn
	}
	if q.seq == nil {
		q.seq = make(map[uint16]uint64)
	}
	q.next++
	q.seq[m.PacketID] = q.next
	q.order = append(q.order, queuedID{m.PacketID, q.next})
}

// remove takes id out of the queue, if it waits.
func (q *immediateQueue) remove(id uint16) {
	if _, waiting := q.seq[id]; !waiting {
		return
	}
	delete(q.seq, id)
	if len(q.seq) == 0 { // nothing waits: drop the stale entries at once
		q.order, q.head = q.order[:0], 0
	}
}

// first returns the oldest waiting id, dropping stale entries before it.
func (q *immediateQueue) first() (uint16, bool) {
	for q.head < len(q.order) {
		e := q.order[q.head]
		if q.seq[e.id] == e.seq {
			if q.head >= 64 && 2*q.head >= len(q.order) { // reclaim the dropped prefix
				n := copy(q.order, q.order[q.head:])
				q.order, q.head = q.order[:n], 0
			}
			return e.id, true
		}
		q.head++
	}
	q.order, q.head = q.order[:0], 0
	return 0, false
}

func (q *immediateQueue) clone() immediateQueue {
	if len(q.seq) == 0 {
		return immediateQueue{next: q.next}
	}
	c := immediateQueue{seq: make(map[uint16]uint64, len(q.seq)), next: q.next}
	for k, v := range q.seq {
		c.seq[k] = v
	}
	c.order = append([]queuedID(nil), q.order[q.head:]...)
	return c
}

// Delete removes an in-flight message from the map. Returns true if the message existed.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[id]
	delete(i.internal, id)
	i.queued.remove(id)

	return ok
}

// TakeRecieveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// TakeRecieveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// DecreaseSendQuota reduces the send quota by 1.
func (i *Inflight) DecreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
	}
}

// IncreaseSendQuota increases the send quota by 1.
func (i *Inflight) IncreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
}

// ResetSendQuota resets the send quota to the maximum allowed value.
func (i *Inflight) ResetSendQuota(n int32) {
	atomic.StoreInt32(&i.sendQuota, n)
	atomic.StoreInt32(&i.maximumSendQuota, n)
}

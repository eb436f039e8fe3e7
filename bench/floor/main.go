// Command floor is the physical floor under the broker figures of bench/fleet: a
// minimal MQTT acker built the way mochi (and so arina's broker) is, a goroutine per
// connection, that answers CONNECT with CONNACK, a QoS 1 PUBLISH with PUBACK and
// PINGREQ with PINGRESP, and does nothing else: no topic, payload or session is kept,
// nothing is stored, nothing relayed. The acks of everything one read brought in go out
// in one write, once nothing more is buffered. Whatever a real broker spends per event
// beyond this program is its own work, not Go's or the machine's.
//
// With -sync DIR it is the floor of a durable broker instead (bench/fleet's
// "floor-sync"): nothing is acknowledged before it is on disk. A connection hands what
// one read brought in (the PUBLISH packets' bodies) to a single committer goroutine
// and waits; the committer takes every hand-off waiting, writes them in one write to a
// log file and fdatasyncs it (group commit), then releases the connections, which
// write their acks. The log is a preallocated 64 MiB file written round (as a
// database recycles its write-ahead log files), so a commit changes no file metadata.
// Whatever a durable broker spends per event beyond this is its own work; the rest is
// the machine's price of an fsync, which no broker that commits before it acks avoids.
//
//	floor [-sync DIR] 127.0.0.1:1883
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
)

func main() {
	dir := flag.String("sync", "", "commit every PUBLISH to a log in this directory (write + fdatasync, group commit) before its PUBACK")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: floor [-sync DIR] host:port") }
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	var l *wal
	if *dir != "" {
		var err error
		if l, err = openWAL(filepath.Join(*dir, "floor.log"), walSize); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go l.run()
	}
	ln, err := net.Listen("tcp", flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := accept(ln, l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// accept serves every connection of ln until it fails (l nil: no log); then it closes
// the connections and returns once they are done.
func accept(ln net.Listener, l *wal) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			serve(c, l)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
}

// serve answers one connection's packets until it ends or sends something malformed;
// with l, it commits the PUBLISHes of every read to it before it writes their acks.
func serve(c net.Conn, l *wal) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 2048)
	var out []byte
	body := make([]byte, 0, 256)
	version := byte(4)
	h := &handoff{done: make(chan error, 1)}
	for {
		if len(out) > 0 && r.Buffered() == 0 {
			if len(h.recs) > 0 {
				if err := l.commit(h); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				h.recs = h.recs[:0]
			}
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		header, err := r.ReadByte()
		if err != nil {
			return
		}
		n, mult := 0, 1
		for i := 0; ; i++ {
			b, err := r.ReadByte()
			if err != nil || i == 4 {
				return
			}
			n += int(b&0x7f) * mult
			mult <<= 7
			if b < 0x80 {
				break
			}
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch header >> 4 {
		case 1: // CONNECT: protocol name (2+len), version
			if len(body) < 2 {
				return
			}
			pn := int(binary.BigEndian.Uint16(body))
			if len(body) < 2+pn+1 {
				return
			}
			version = body[2+pn]
			if version == 5 {
				out = append(out, 0x20, 3, 0, 0, 0) // CONNACK, no properties
			} else {
				out = append(out, 0x20, 2, 0, 0)
			}
		case 3: // PUBLISH
			qos := header >> 1 & 3
			if qos == 0 {
				continue
			}
			if len(body) < 2 {
				return
			}
			tl := int(binary.BigEndian.Uint16(body))
			if len(body) < 2+tl+2 {
				return
			}
			id := body[2+tl : 4+tl]
			out = append(out, 0x40, 2, id[0], id[1]) // PUBACK (QoS 2 is not answered)

			// With a log, its record: the body's length, then the body.
			if l != nil {
				h.recs = binary.AppendUvarint(h.recs, uint64(len(body)))
				h.recs = append(h.recs, body...)
			}
		case 12: // PINGREQ
			out = append(out, 0xd0, 0)
		case 14: // DISCONNECT
			return
		}
	}
}

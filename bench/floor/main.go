// Command floor is the physical floor under the broker figures of bench/fleet: a
// minimal MQTT acker built the way mochi (and so arina's broker) is, a goroutine per
// connection, that answers CONNECT with CONNACK, a QoS 1 PUBLISH with PUBACK and
// PINGREQ with PINGRESP, and does nothing else: no topic, payload or session is kept,
// nothing is stored, nothing relayed. The acks of everything one read brought in go out
// in one write, once nothing more is buffered. Whatever a real broker spends per event
// beyond this program is its own work, not Go's or the machine's.
//
//	floor 127.0.0.1:1883
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: floor host:port")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go serve(c)
	}
}

// serve answers one connection's packets until it ends or sends something malformed.
func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 2048)
	var out []byte
	body := make([]byte, 0, 256)
	version := byte(4)
	for {
		if len(out) > 0 && r.Buffered() == 0 {
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
		case 12: // PINGREQ
			out = append(out, 0xd0, 0)
		case 14: // DISCONNECT
			return
		}
	}
}

#!/usr/bin/env python3
"""A badge reader for Arina, with paho-mqtt (1.6, as in Debian bookworm, or 2.x).

    python3 badge.py [--host H] [--port P] [-u USER] [--password PW] [--cafile CA] CONTENT REACTION BADGE

Publishes "add BADGE" to kitchen/CONTENT/REACTION with QoS 1, so the broker acknowledges
it only once Arina has applied (and stored) it, with a will "remove BADGE" on the same
topic: if the reader loses power or its connection, the broker publishes the will and the
badge leaves the set. Then it follows the retained count topic
arina/counts/CONTENT/REACTION and prints "count N" on each change. On Ctrl-C or SIGTERM it
publishes "remove BADGE" itself (a clean disconnect does not send the will) and exits.
"""

import argparse
import os
import signal
import sys
import threading

import paho.mqtt.client as mqtt


def new_client(client_id):
    """A client for paho-mqtt 1.x or 2.x, with the callbacks written below."""
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt >= 2.0
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    return mqtt.Client(client_id=client_id)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("content")
    p.add_argument("reaction")
    p.add_argument("badge")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("-u", "--username")
    p.add_argument("--password", default=os.environ.get("ARINA_PASSWORD"),
                   help="default: $ARINA_PASSWORD")
    p.add_argument("--cafile", help="CA certificate: connect with TLS")
    p.add_argument("--prefix", default="kitchen", help="Arina's mqtt.topic_prefix")
    p.add_argument("--counts-prefix", default="arina/counts", help="Arina's mqtt.counts_prefix")
    args = p.parse_args()

    topic = "%s/%s/%s" % (args.prefix, args.content, args.reaction)
    counts = "%s/%s/%s" % (args.counts_prefix, args.content, args.reaction)
    connected = threading.Event()

    client = new_client("badge-" + args.badge)
    if args.username:
        client.username_pw_set(args.username, args.password)
    if args.cafile:
        client.tls_set(ca_certs=args.cafile)
    # The will: published by the broker if this client goes away without disconnecting.
    client.will_set(topic, "remove " + args.badge, qos=1, retain=False)

    # Callbacks with these signatures work with paho-mqtt 1.x and 2.x (VERSION2).
    def on_connect(client, userdata, flags, rc, properties=None):
        if rc != 0:
            print("connect refused: %s" % rc, file=sys.stderr, flush=True)
            return
        client.subscribe(counts, qos=1)
        connected.set()

    def on_message(client, userdata, msg):
        print("count %s" % msg.payload.decode(), flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()
    if not connected.wait(10):
        sys.exit("not connected to %s:%d" % (args.host, args.port))

    # QoS 1: wait for the PUBACK, which Arina sends once the event is applied.
    client.publish(topic, "add " + args.badge, qos=1).wait_for_publish()
    print("added %s to %s" % (args.badge, topic), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(1):
        pass

    client.publish(topic, "remove " + args.badge, qos=1).wait_for_publish()
    print("removed %s from %s" % (args.badge, topic), flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()

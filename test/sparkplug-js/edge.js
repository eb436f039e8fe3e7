// An edge node made of Eclipse Tahu's JavaScript Sparkplug B client (npm
// sparkplug-client, which encodes with sparkplug-payload), driven by
// test/sparkplug_js_e2e_test.go: one command per line on standard input.
//
//   node edge.js <mqtt url> <group> <edge node>
//
// Commands: "nbirth - name=value...", "dbirth <device> name=value...",
// "ddata <device> name=value...", "zddata" and "gzddata" (the same compressed with
// DEFLATE, GZIP), "ddeath <device>", "stop" (NDEATH, then disconnect).
// A value true or false is a Boolean metric, anything else a String one. The node's
// NDEATH is its will: kill the process to have the broker publish it. It prints
// "connected" once connected and "ok <command>" once a command's message is written.
'use strict';
const readline = require('readline');
const sparkplug = require('sparkplug-client');

const [url, group, edge] = process.argv.slice(2);
const client = sparkplug.newClient({
    serverUrl: url, username: '', password: '', groupId: group, edgeNode: edge,
    clientId: 'tahu-' + edge, version: 'spBv1.0', publishDeath: true,
    mqttOptions: { reconnectPeriod: 0 },
});
client.on('birth', () => console.log('connected'));
client.on('error', (err) => { console.error('error: ' + err); process.exit(2); });

function metric(kv) {
    const i = kv.indexOf('=');
    const name = kv.slice(0, i), value = kv.slice(i + 1);
    if (value === 'true' || value === 'false') {
        return { name, value: value === 'true', type: 'Boolean' };
    }
    return { name, value, type: 'String' };
}

// Each message gets a later timestamp than the one before, as a node's messages in a
// row do: with equal ones, last-writer-wins would let a birth's remove win over the
// next message's add of the same membership.
let last = 0;
function now() {
    last = Math.max(Date.now(), last + 1);
    return last;
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const [cmd, device, ...kvs] = line.trim().split(/\s+/);
    const payload = { timestamp: now(), metrics: kvs.map(metric) };
    switch (cmd) {
    case 'nbirth': client.publishNodeBirth(payload); break;
    case 'dbirth': client.publishDeviceBirth(device, payload); break;
    case 'ddata': client.publishDeviceData(device, payload); break;
    case 'zddata': client.publishDeviceData(device, payload, { compress: true }); break;
    case 'gzddata': client.publishDeviceData(device, payload, { compress: true, algorithm: 'GZIP' }); break;
    case 'ddeath': client.publishDeviceDeath(device, { timestamp: now() }); break;
    case 'stop': client.stop(); break;
    default: console.error('unknown command ' + cmd); process.exit(2);
    }
    console.log('ok ' + cmd);
});

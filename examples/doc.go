// Package examples holds no code: its tests run the integration examples in the folders
// beside it (a Node-RED flow, a Telegraf configuration, a Python paho script, an ESP32
// sketch) against a whole Arina daemon on loopback, with the real programs where they
// are installed. See README.md.
package examples

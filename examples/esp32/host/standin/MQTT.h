// A stand-in for the arduino-mqtt library (256dpi/arduino-mqtt 2.5, "MQTT.h") for host
// builds of badge.ino where the library's source is not at hand, as in CI: the
// MQTTClient calls the sketch makes, with the library's signatures and behaviour
// (MQTT 3.1.1, clean session; connect, subscribe and a QoS 1 publish wait for their
// acknowledgement; loop() delivers messages and keeps the connection alive), written
// from its documentation. TestESP32_Sketch builds with the real library instead when
// ARINA_ARDUINO_MQTT points at it.
#ifndef ARINA_HOST_MQTT_H
#define ARINA_HOST_MQTT_H

#include <string>

#include "Arduino.h"
#include "Client.h"

class MQTTClient;
typedef void (*MQTTClientCallbackSimple)(String &topic, String &payload);

class MQTTClient {
 public:
  explicit MQTTClient(int bufSize = 128) : bufSize_(bufSize) {}

  void begin(const char hostname[], int port, Client &client) {
    host_ = hostname;
    port_ = port;
    net_ = &client;
  }
  void onMessage(MQTTClientCallbackSimple cb) { cb_ = cb; }
  void setKeepAlive(int keepAlive) { keepAlive_ = keepAlive; }
  void setWill(const char topic[], const char payload[], bool retained, int qos) {
    will_ = true;
    willTopic_ = topic;
    willPayload_ = payload;
    willRetained_ = retained;
    willQoS_ = qos;
  }

  bool connect(const char clientId[], bool skip = false) { return connect(clientId, nullptr, nullptr, skip); }
  bool connect(const char clientId[], const char username[], const char password[], bool = false) {
    close();
    if (!net_->connect(host_.c_str(), (uint16_t)port_)) {
      err_ = -3;  // LWMQTT_NETWORK_FAILED_CONNECT
      return false;
    }
    uint8_t flags = 0x02;  // clean session
    if (will_) flags |= 0x04 | (uint8_t)(willQoS_ << 3) | (willRetained_ ? 0x20 : 0);
    if (username) flags |= 0x80;
    if (username && password) flags |= 0x40;
    std::string b;
    str(b, "MQTT");
    b += (char)4;
    b += (char)flags;
    b += (char)(keepAlive_ >> 8);
    b += (char)(keepAlive_ & 0xff);
    str(b, clientId);
    if (will_) {
      str(b, willTopic_);
      str(b, willPayload_);
    }
    if (username) str(b, username);
    if (username && password) str(b, password);
    connected_ = true;
    std::string ack;
    if (!send(0x10, b) || !await(0x20, -1, ack) || ack.size() != 2) return fail(-10);
    rc_ = (uint8_t)ack[1];
    if (rc_ != 0) return fail(-11);  // LWMQTT_CONNECTION_DENIED
    return true;
  }

  bool subscribe(const char topic[], int qos) {
    std::string b;
    int id = nextID();
    b += (char)(id >> 8);
    b += (char)(id & 0xff);
    str(b, topic);
    b += (char)qos;
    std::string ack;
    if (!send(0x82, b) || !await(0x90, id, ack)) return fail(-10);
    return ack.size() == 3 && (uint8_t)ack[2] != 0x80;
  }

  bool publish(const char topic[], const char payload[], bool retained, int qos) {
    std::string b;
    str(b, topic);
    int id = 0;
    if (qos > 0) {
      id = nextID();
      b += (char)(id >> 8);
      b += (char)(id & 0xff);
    }
    b += payload;
    if (!send((uint8_t)(0x30 | (qos << 1) | (retained ? 1 : 0)), b)) return fail(-2);
    std::string ack;
    return qos == 0 || await(0x40, id, ack) || fail(-10);
  }

  bool loop() {
    if (!connected()) return false;
    if (net_->available() > 0) {
      uint8_t type;
      std::string body;
      if (!readPacket(type, body)) return fail(-1);
      handle(type, body);
    }
    if (millis() - lastSent_ >= (uint32_t)keepAlive_ * 1000 && !send(0xc0, "")) return fail(-2);
    return true;
  }

  bool connected() { return connected_ && net_ && net_->connected() == 1; }
  bool disconnect() {
    bool ok = connected() && send(0xe0, "");
    close();
    return ok;
  }
  int lastError() { return err_; }
  int returnCode() { return rc_; }

 private:
  std::string host_;
  int port_ = 1883;
  Client *net_ = nullptr;
  int bufSize_;
  MQTTClientCallbackSimple cb_ = nullptr;
  int keepAlive_ = 10;
  bool will_ = false, willRetained_ = false;
  std::string willTopic_, willPayload_;
  int willQoS_ = 0;
  bool connected_ = false;
  int err_ = 0, rc_ = 0, lastID_ = 0;
  uint32_t lastSent_ = 0;

  static void str(std::string &b, const std::string &s) {
    b += (char)(s.size() >> 8);
    b += (char)(s.size() & 0xff);
    b += s;
  }
  int nextID() { return lastID_ = lastID_ % 65535 + 1; }
  bool fail(int err) {
    err_ = err;
    close();
    return false;
  }
  void close() {
    connected_ = false;
    if (net_) net_->stop();
  }

  bool send(uint8_t header, const std::string &body) {
    std::string p(1, (char)header);
    size_t n = body.size();
    do {
      uint8_t d = n % 128;
      n /= 128;
      p += (char)(n > 0 ? d | 0x80 : d);
    } while (n > 0);
    p += body;
    lastSent_ = millis();
    return net_->write((const uint8_t *)p.data(), p.size()) == p.size();
  }

  // readFull reads n bytes, waiting up to a second for them as the library does.
  bool readFull(uint8_t *buf, size_t n) {
    uint32_t start = millis();
    while (n > 0 && millis() - start < 1000) {
      int r = net_->read(buf, n);
      if (r > 0) {
        buf += r;
        n -= r;
        continue;
      }
      if (!net_->connected()) return false;
      delay(1);
    }
    return n == 0;
  }

  bool readPacket(uint8_t &type, std::string &body) {
    uint8_t h;
    if (!readFull(&h, 1)) return false;
    size_t len = 0, mul = 1;
    for (int i = 0; i < 4; i++) {
      uint8_t d;
      if (!readFull(&d, 1)) return false;
      len += (d & 0x7f) * mul;
      mul *= 128;
      if (!(d & 0x80)) break;
    }
    if ((int)len > bufSize_) return false;  // the library's buffer would not hold it
    body.assign(len, '\0');
    if (len > 0 && !readFull((uint8_t *)&body[0], len)) return false;
    type = h;
    return true;
  }

  // handle delivers a PUBLISH (acknowledging QoS 1) and ignores PINGRESP.
  void handle(uint8_t type, const std::string &body) {
    if ((type & 0xf0) != 0x30 || body.size() < 2) return;
    size_t tl = ((uint8_t)body[0] << 8) | (uint8_t)body[1];
    int qos = (type >> 1) & 3;
    size_t off = 2 + tl + (qos > 0 ? 2 : 0);
    if (off > body.size()) return;
    if (qos == 1) send(0x40, body.substr(2 + tl, 2));
    String topic(body.substr(2, tl)), payload(body.substr(off));
    if (cb_) cb_(topic, payload);
  }

  // await reads packets until one of the given type (and packet id, unless -1) comes,
  // delivering the messages that arrive meanwhile, for at most a second.
  bool await(uint8_t type, int id, std::string &body) {
    uint32_t start = millis();
    while (millis() - start < 1000) {
      uint8_t t;
      if (net_->available() <= 0) {
        if (!net_->connected()) return false;
        delay(1);
        continue;
      }
      if (!readPacket(t, body)) return false;
      if (t == type && (id < 0 || (body.size() >= 2 && (((uint8_t)body[0] << 8) | (uint8_t)body[1]) == id))) {
        return true;
      }
      handle(t, body);
    }
    return false;
  }
};

#endif

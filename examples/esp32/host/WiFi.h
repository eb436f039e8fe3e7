// Host stand-in for the ESP32 core's WiFi (see Arduino.h): the network is already up,
// and WiFiClient is a TCP socket.
#ifndef ARINA_HOST_WIFI_H
#define ARINA_HOST_WIFI_H

#include "Arduino.h"
#include "Client.h"

#define WL_CONNECTED 3

class HostWiFi {
 public:
  void begin(const char *, const char *) {}
  int status() { return WL_CONNECTED; }
};
extern HostWiFi WiFi;

class WiFiClient : public Client {
 public:
  ~WiFiClient() override { stop(); }
  int connect(IPAddress ip, uint16_t port) override;
  int connect(const char *host, uint16_t port) override;
  size_t write(const uint8_t *buf, size_t size) override;
  int available() override;
  int read(uint8_t *buf, size_t size) override;
  void stop() override;
  uint8_t connected() override;

 private:
  int fd_ = -1;
};

#endif

// Host stand-in for Arduino's Client (see Arduino.h): the calls arduino-mqtt makes.
#ifndef ARINA_HOST_CLIENT_H
#define ARINA_HOST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "IPAddress.h"

class Client {
 public:
  virtual ~Client() {}
  virtual int connect(IPAddress ip, uint16_t port) = 0;
  virtual int connect(const char *host, uint16_t port) = 0;
  virtual size_t write(const uint8_t *buf, size_t size) = 0;
  virtual int available() = 0;
  virtual int read(uint8_t *buf, size_t size) = 0;
  virtual void stop() = 0;
  virtual uint8_t connected() = 0;
};

#endif

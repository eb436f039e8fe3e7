// Host stand-in for Arduino's IPAddress (see Arduino.h).
#ifndef ARINA_HOST_IPADDRESS_H
#define ARINA_HOST_IPADDRESS_H

#include <stdint.h>

class IPAddress {
 public:
  IPAddress() {}
  IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d) : b_{a, b, c, d} {}
  uint8_t operator[](int i) const { return b_[i]; }

 private:
  uint8_t b_[4] = {0, 0, 0, 0};
};

#endif

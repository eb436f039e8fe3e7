// Builds badge.ino for the host (see Arduino.h): the sketch, the stand-ins' code, and
// a main that runs setup() and then loop() forever, as the Arduino core does.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "Arduino.h"
#include "WiFi.h"

HostSerial Serial;
HostWiFi WiFi;

uint32_t millis() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void delay(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  nanosleep(&ts, nullptr);
}

int WiFiClient::connect(IPAddress ip, uint16_t port) {
  char host[16];
  snprintf(host, sizeof host, "%d.%d.%d.%d", ip[0], ip[1], ip[2], ip[3]);
  return connect(host, port);
}

int WiFiClient::connect(const char *host, uint16_t port) {
  stop();
  struct addrinfo hints = {}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  char service[8];
  snprintf(service, sizeof service, "%u", port);
  if (getaddrinfo(host, service, &hints, &res) != 0) {
    return 0;
  }
  int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    return 0;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
  return 1;
}

size_t WiFiClient::write(const uint8_t *buf, size_t size) {
  if (fd_ < 0) {
    return 0;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = send(fd_, buf + done, size - done, MSG_NOSIGNAL);
    if (n <= 0) {
      return 0;
    }
    done += n;
  }
  return done;
}

int WiFiClient::available() {
  int n = 0;
  if (fd_ < 0 || ioctl(fd_, FIONREAD, &n) != 0) {
    return 0;
  }
  return n;
}

// read does not wait, like the Arduino clients: -1 when nothing has arrived yet.
int WiFiClient::read(uint8_t *buf, size_t size) {
  if (fd_ < 0) {
    return -1;
  }
  ssize_t n = recv(fd_, buf, size, MSG_DONTWAIT);
  if (n == 0) {
    stop();  // the broker closed the connection
    return -1;
  }
  return n < 0 ? -1 : (int)n;
}

void WiFiClient::stop() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

uint8_t WiFiClient::connected() {
  if (fd_ < 0) {
    return 0;
  }
  uint8_t b;
  ssize_t n = recv(fd_, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    stop();
    return 0;
  }
  return 1;
}

#include "../badge.ino"

int main() {
  setup();
  for (;;) {
    loop();
  }
}

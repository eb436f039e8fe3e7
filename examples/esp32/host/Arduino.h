// A host (Linux) stand-in for the few parts of the Arduino core that badge.ino and the
// arduino-mqtt library use, so that TestESP32_Sketch can build the sketch with g++ and
// run it against a real Arina. Not a port of Arduino: just enough, with the same names
// and types.
#ifndef ARINA_HOST_ARDUINO_H
#define ARINA_HOST_ARDUINO_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <string>

uint32_t millis();
void delay(uint32_t ms);

class String {
 public:
  String() {}
  String(const char *s) : s_(s ? s : "") {}
  String(const std::string &s) : s_(s) {}
  const char *c_str() const { return s_.c_str(); }
  unsigned int length() const { return s_.size(); }
  String operator+(const String &o) const { return String(s_ + o.s_); }
  String operator+(const char *o) const { return String(s_ + o); }
  bool operator==(const char *o) const { return s_ == o; }

 private:
  std::string s_;
};

inline String operator+(const char *a, const String &b) { return String(a) + b; }

// Serial prints to standard output, flushed at each line (the test reads it).
class HostSerial {
 public:
  void begin(unsigned long) {}
  void print(const char *s) { fputs(s, stdout), fflush(stdout); }
  void print(const String &s) { print(s.c_str()); }
  void println(const char *s) { printf("%s\n", s), fflush(stdout); }
  void println(const String &s) { println(s.c_str()); }
  int printf(const char *format, ...) __attribute__((format(printf, 2, 3))) {
    va_list ap;
    va_start(ap, format);
    int n = vprintf(format, ap);
    va_end(ap);
    fflush(stdout);
    return n;
  }
};
extern HostSerial Serial;

#endif

// Host stand-in for Arduino's Stream.h (see Arduino.h): Client is all the library uses.
#include "Arduino.h"

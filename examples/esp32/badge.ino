// A badge reader on an ESP32 (Arduino core) for Arina.
//
// While it is up and connected, badge BADGE is in the set of (CONTENT, REACTION): it
// publishes "add BADGE" to kitchen/CONTENT/REACTION with QoS 1 on every connect, and
// leaves a will "remove BADGE" on the same topic, so the broker removes the badge when
// the reader loses power or its network (after 1.5 keep-alives, here 15 s). It prints
// the live count of the set, read from the retained topic
// arina/counts/CONTENT/REACTION.
//
// Library: "MQTT" by Joel Gaehwiler (256dpi/arduino-mqtt, 2.5), in the Library Manager.
// It publishes with QoS 1 (publish() returns once the PUBACK came, and Arina sends that
// only after applying and storing the event) and sets a will with QoS 1. PubSubClient,
// the other common library, publishes QoS 0 only: a lost "add" would then be lost for
// good, which is why it is not used here.
//
// Set the values below (or pass them as -D definitions when building).

#include <MQTT.h>
#include <WiFi.h>

#ifndef WIFI_SSID
#define WIFI_SSID "kitchen-iot"
#endif
#ifndef WIFI_PASSWORD
#define WIFI_PASSWORD "change-me"
#endif
#ifndef ARINA_HOST
#define ARINA_HOST "192.168.1.10"  // an IP address: Arduino does not resolve .local names
#endif
#ifndef ARINA_PORT
#define ARINA_PORT 1883
#endif
#ifndef ARINA_USERNAME  // with mqtt.auth.users_file: a user allowed to write kitchen/#
#define ARINA_USERNAME ""  // and read arina/counts/#; "" connects without credentials
#endif
#ifndef ARINA_PASSWORD
#define ARINA_PASSWORD ""
#endif
#ifndef CONTENT
#define CONTENT "stove-3"
#endif
#ifndef REACTION
#define REACTION "active"
#endif
#ifndef BADGE
#define BADGE "sam"
#endif

const char topic[] = "kitchen/" CONTENT "/" REACTION;
const char countsTopic[] = "arina/counts/" CONTENT "/" REACTION;
const char addBadge[] = "add " BADGE;
const char removeBadge[] = "remove " BADGE;
const char clientId[] = "badge-" BADGE;

WiFiClient net;
MQTTClient mqtt(256);

void countReceived(String &topic, String &payload) {
  // Only print here: the library must not be used from its callback.
  Serial.println("count " + payload);
}

// connect (re)connects and adds the badge; the will took it out if the connection was
// lost, and an add of a badge already in the set changes nothing.
void connect() {
  while (WiFi.status() != WL_CONNECTED) {
    delay(500);
  }
  for (;;) {
    bool ok = ARINA_USERNAME[0] == '\0' ? mqtt.connect(clientId)
                                        : mqtt.connect(clientId, ARINA_USERNAME, ARINA_PASSWORD);
    if (ok && mqtt.subscribe(countsTopic, 1) && mqtt.publish(topic, addBadge, false, 1)) {
      Serial.println("added " BADGE " to " CONTENT "/" REACTION);
      return;
    }
    // lastError: the library's lwmqtt_err_t; returnCode: the broker's CONNACK code.
    Serial.printf("not connected (error %d, return code %d); retrying\n", (int)mqtt.lastError(),
                  (int)mqtt.returnCode());
    mqtt.disconnect();
    delay(1000);
  }
}

void setup() {
  Serial.begin(115200);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  mqtt.begin(ARINA_HOST, ARINA_PORT, net);
  mqtt.setKeepAlive(10);
  // The will, set before connecting: the broker publishes it if this reader goes away
  // without disconnecting. QoS 1, not retained (an event, not a state).
  mqtt.setWill(topic, removeBadge, false, 1);
  mqtt.onMessage(countReceived);
  connect();
}

void loop() {
  mqtt.loop();
  delay(10);  // lets the WiFi task run
  if (!mqtt.connected()) {
    connect();
  }
}

#!/bin/sh
# Regenerates docs/board.png, the README's picture of the floor page, from a seeded
# daemon, so the picture never drifts from the page:
#
#   docs/board.sh        # needs go and chromium (apt-get install chromium); ~1 min
#
# It runs TestWeb_BoardScreenshot (test/board_screenshot_test.go): an in-process
# daemon with 1 s history steps over 1 min, seeded over MQTT for
# ARINA_SCREENSHOT_SECONDS (default 40), shown in headless Chromium at 1600×900.
# (Chromium's own --screenshot takes the picture at the load event, before the page
# has its data: the change stream never finishes loading, so neither a timeout nor a
# virtual-time budget helps; the test waits for the sparklines instead.)
set -eu
cd "$(dirname "$0")/.."
ARINA_SCREENSHOT="$PWD/docs/board.png" go test -count=1 -run '^TestWeb_BoardScreenshot$' -v ./test/ | grep -E '^(--- |ok|FAIL|.*wrote)'

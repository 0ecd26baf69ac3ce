#!/usr/bin/env bash
# The demo: a bridge with the echo responder, and a simulated bot speaking real recordings.
set -euo pipefail
out=demo-out
mkdir -p "$out"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sounds=/usr/share/sounds/alsa

speakbridge serve --port "$port" --responder echo --grace-s 1 >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "listening on" "$out/server.log" && break; sleep 0.1; done

echo "== a simulated bot (today's, gen3: 10 ms frames, 24 kHz named in its hello) speaks four"
echo "== recordings into ws://127.0.0.1:$port/bots/demo;"
echo "== the echo responder says each back when the speaker pauses"
speakbridge simulate "ws://127.0.0.1:$port/bots/demo" --bot gen3 --rate 24000 \
  --wav "$sounds/Front_Left.wav" --wav "$sounds/Front_Right.wav" \
  --wav "$sounds/Rear_Left.wav" --wav "$sounds/Rear_Right.wav" \
  --gap-s 2 --out "$out/heard.wav"

sleep 1.5  # the session ends once its grace period is over
kill -TERM $server
wait $server || true
trap - EXIT
echo
echo "== the server's summary of the session"
grep -E "ended \(" "$out/server.log" | sed 's/^.*INFO bridge.server.session: //'
echo "(server log: $out/server.log)"

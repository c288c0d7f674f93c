#!/usr/bin/env bash
# Starts the stack in the foreground: sticky-proxy on 127.0.0.1:8700 in front
# of node-1..node-3 on 127.0.0.1:8701..8703, and the demo shop on
# http://localhost:8710 (another site than the proxy: the co-browse widget
# runs cross-site there, as on a real company website). Ctrl-C stops everything.
# Usage: scripts/run-stack.sh [BIN_DIR]   (default target/release)
#
# Every run makes a fresh random agent key (target/dev/agent.key) that the
# nodes verify agent credentials with, and mints one credential for a demo
# agent (target/dev/agent-token, valid 8 h) that the README's examples use.
set -euo pipefail
bin="${1:-target/release}"
proxy_origin="http://127.0.0.1:8700"
demo_origin="http://localhost:8710"
origins="${COBROWSE_ALLOWED_ORIGINS:-$proxy_origin,http://localhost:8700,$demo_origin}"
dev="target/dev"

mkdir -p "$dev"
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dev/agent.key"
"$bin/session-node" agent-token --key-file "$dev/agent.key" --sub demo-agent --ttl 8h > "$dev/agent-token"

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Each node draws its session tokens from its own third of the token space
# (unique across the stack) and believes X-Forwarded-For from the proxy.
for i in 1 2 3; do
  "$bin/session-node" --name "node-$i" --listen "127.0.0.1:870$i" \
    --allowed-origins "$origins" --drain-timeout 2s \
    --agent-key-file "$dev/agent.key" --trusted-proxies 127.0.0.1 \
    --token-partition "$i/3" &
  pids+=($!)
done
"$bin/sticky-proxy" --listen 127.0.0.1:8700 --admin-listen 127.0.0.1:8799 \
  --agent-key-file "$dev/agent.key" \
  --node node-1=http://127.0.0.1:8701 \
  --node node-2=http://127.0.0.1:8702 \
  --node node-3=http://127.0.0.1:8703 &
pids+=($!)
# The demo shop, which includes the widget with the one tag a website adds.
"$bin/session-node" demo-site --listen 127.0.0.1:8710 \
  --widget-url "$proxy_origin/cobrowse/widget.js" &
pids+=($!)

cat <<INFO

  sticky-proxy   http://127.0.0.1:8700   (admin: http://127.0.0.1:8799/metrics, /nodes)
  node-1         http://127.0.0.1:8701
  node-2         http://127.0.0.1:8702
  node-3         http://127.0.0.1:8703

Co-browse in two browser windows:
  demo shop      $demo_origin/                    (the customer: click "Co-browse")
  agent console  $proxy_origin/cobrowse/agent/     (sign in with the credential below, type the number)

An agent credential (demo-agent, 8 h), also in $dev/agent-token:

  export AGENT_TOKEN=$(cat "$dev/agent-token")

More: $bin/session-node agent-token --key-file $dev/agent.key --sub NAME [--session TOKEN] [--ttl 1h]

Try:
  curl -si -X POST http://127.0.0.1:8700/cobrowse/rest/live/sessions
  curl -si -H 'Origin: $proxy_origin' http://127.0.0.1:8700/cobrowse/rest/live/sessions/<sessionToken>
  curl -s http://127.0.0.1:8799/nodes

Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true

#!/usr/bin/env bash
# Starts the stack in the foreground: sticky-proxy on 127.0.0.1:8700 in front
# of node-1..node-3 on 127.0.0.1:8701..8703, and the demo shop on
# http://localhost:8710 (another site than the proxy: the co-browse widget
# runs cross-site there, as on a real company website). Ctrl-C stops everything.
# Usage: scripts/run-stack.sh [BIN_DIR]   (default target/release)
#        TLS=1 scripts/run-stack.sh [BIN_DIR]   the proxy serves https on 8700
#          with a fresh self-signed certificate for localhost and 127.0.0.1
#          (target/dev/cert.pem and key.pem, made by BIN_DIR/dev-cert;
#          `make run-tls`). The nodes behind it stay plain HTTP.
#
# Every run makes a fresh random agent key (target/dev/agent.key) that the
# nodes verify agent credentials with, and mints one credential for a demo
# agent (target/dev/agent-token, valid 8 h) that the README's examples use.
set -euo pipefail
bin="${1:-target/release}"
tls="${TLS:-0}"
scheme=http
[ "$tls" = 1 ] && scheme=https
proxy_origin="$scheme://127.0.0.1:8700"
# What the examples call: with TLS the certificate's name, localhost.
url="$proxy_origin"
[ "$tls" = 1 ] && url="https://localhost:8700"
demo_origin="http://localhost:8710"
origins="${COBROWSE_ALLOWED_ORIGINS:-$proxy_origin,$scheme://localhost:8700,$demo_origin}"
dev="target/dev"

mkdir -p "$dev"
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dev/agent.key"
"$bin/session-node" agent-token --key-file "$dev/agent.key" --sub demo-agent --ttl 8h > "$dev/agent-token"
tls_flags=()
node_tls_flags=()
curl_ca=""
if [ "$tls" = 1 ]; then
  if [ ! -x "$bin/dev-cert" ]; then
    echo "$bin/dev-cert is missing: build it (cargo build --release -p integration --bin dev-cert; make run-tls does)" >&2
    exit 1
  fi
  "$bin/dev-cert" "$dev" localhost 127.0.0.1 ::1 > /dev/null
  tls_flags=(--tls-cert "$dev/cert.pem" --tls-key "$dev/key.pem")
  # Behind https the nodes' cookie can be what co-browse across sites needs.
  node_tls_flags=(--cookie-secure)
  curl_ca="--cacert $dev/cert.pem "
fi

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
    --token-partition "$i/3" ${node_tls_flags[@]+"${node_tls_flags[@]}"} &
  pids+=($!)
done
"$bin/sticky-proxy" --listen 127.0.0.1:8700 --admin-listen 127.0.0.1:8799 \
  --agent-key-file "$dev/agent.key" ${tls_flags[@]+"${tls_flags[@]}"} \
  --node node-1=http://127.0.0.1:8701 \
  --node node-2=http://127.0.0.1:8702 \
  --node node-3=http://127.0.0.1:8703 &
pids+=($!)
# The demo shop, which includes the widget with the one tag a website adds.
"$bin/session-node" demo-site --listen 127.0.0.1:8710 \
  --widget-url "$proxy_origin/cobrowse/widget.js" &
pids+=($!)

cat <<INFO

  sticky-proxy   $url   (admin: http://127.0.0.1:8799/metrics, /nodes)
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
  curl -si ${curl_ca}-X POST $url/cobrowse/rest/live/sessions
  curl -si ${curl_ca}-H 'Origin: $url' $url/cobrowse/rest/live/sessions/<sessionToken>
  curl -s http://127.0.0.1:8799/nodes

Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true

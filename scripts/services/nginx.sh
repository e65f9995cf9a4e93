#!/usr/bin/env bash
# nginx on 127.0.0.1 in front of several `zoo serve` replicas (round robin), for the hub's
# tests and scripts/cluster.sh.
#
#   scripts/services/nginx.sh start DIR PORT UPSTREAM...   # UPSTREAM: 127.0.0.1:P
#   scripts/services/nginx.sh stop DIR
#
# Its own config under DIR/nginx (Debian's default one listens on every interface). Bodies
# stream both ways (no buffering, no size limit), as LFS uploads and downloads need; the
# Host header keeps the port, so the hub's absolute links point back at nginx.
set -euo pipefail
cmd="${1:?start|stop}"
dir="${2:?DIR}"
nginx="${ZOO_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$nginx" ] || { echo "nginx.sh: no nginx (apt-get install nginx-light)" >&2; exit 1; }
n="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")/nginx"
case "$cmd" in
start)
  port="${3:?PORT}"
  shift 3
  [ $# -gt 0 ] || { echo "nginx.sh: no upstreams" >&2; exit 2; }
  mkdir -p "$n/tmp"
  servers=""
  for u in "$@"; do servers+="    server $u max_fails=1 fail_timeout=2s;"$'\n'; done
  cat > "$n/nginx.conf" <<CONF
pid $n/nginx.pid;
error_log $n/error.log warn;
worker_processes 2;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $n/tmp/body;
  proxy_temp_path $n/tmp/proxy;
  fastcgi_temp_path $n/tmp/fastcgi;
  uwsgi_temp_path $n/tmp/uwsgi;
  scgi_temp_path $n/tmp/scgi;
  upstream zoo {
$servers    keepalive 32;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://zoo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host:\$server_port;
      client_max_body_size 0;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
      proxy_next_upstream error timeout http_502;
    }
  }
}
CONF
  "$nginx" -p "$n" -c "$n/nginx.conf"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "http://127.0.0.1:$port"; exit 0; }
    sleep 0.05
  done
  echo "nginx.sh: nothing listens on $port" >&2
  cat "$n/error.log" >&2 || true
  exit 1
  ;;
stop)
  [ -f "$n/nginx.pid" ] && kill "$(cat "$n/nginx.pid")" 2>/dev/null || true
  ;;
*)
  echo "usage: $0 start DIR PORT UPSTREAM... | stop DIR" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# A throwaway S3-compatible object store: Ceph's RADOS gateway on 127.0.0.1 — one monitor,
# one memory-backed OSD, one gateway — for the hub's tests and scripts/cluster.sh --s3.
#
#   scripts/services/rgw.sh start DIR [BUCKET]   # prints: ENDPOINT ACCESS_KEY SECRET_KEY BUCKET
#   scripts/services/rgw.sh stop DIR
#
# Needs `apt-get install --no-install-recommends radosgw ceph-mon ceph-osd ceph-common`
# (.ci/run installs them). Everything (config, logs, sockets) under DIR/rgw; the data lives in
# memory (memstore, 4 GiB at most) and is gone when stopped. About 15 s and 400 MB.
set -euo pipefail
cmd="${1:?start|stop}"
dir="${2:?DIR}"
r="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")/rgw"
conf="$r/ceph.conf"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
case "$cmd" in
start)
  bucket="${3:-hub}"
  for b in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph; do
    command -v "$b" >/dev/null || { echo "rgw.sh: no $b (apt-get install --no-install-recommends radosgw ceph-mon ceph-osd ceph-common)" >&2; exit 1; }
  done
  mkdir -p "$r"/{run,log,mon,osd/0,rgw}
  mon_port="$(free_port)"
  port="$(free_port)"
  fsid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
  key="zoo$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
  secret="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
  cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
ms bind ipv4 = true
public addr = 127.0.0.1
cluster addr = 127.0.0.1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = $r/run
pid file = $r/run/\$name.pid
admin socket = $r/run/\$name.asok
log file = $r/log/\$name.log
mon data = $r/mon/\$id
osd data = $r/osd/\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd max object size = 1073741824
keyring = /dev/null
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $r/rgw
rgw dns name = 127.0.0.1
CONF
  monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$r/monmap" > /dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$r/monmap" > "$r/log/mkfs.log" 2>&1
  ceph-mon -c "$conf" -i a 2>> "$r/log/daemons.log"
  # The OSD is registered and made with one uuid; it registers itself when it boots.
  osd_uuid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
  ceph -c "$conf" --connect-timeout 20 osd create "$osd_uuid" 0 > /dev/null
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" > "$r/log/osd-mkfs.log" 2>&1
  started=0
  for _ in 1 2 3; do
    if ceph-osd -c "$conf" -i 0 2>> "$r/log/daemons.log"; then started=1; break; fi
    sleep 1
  done
  [ "$started" = 1 ] || { echo "rgw.sh: the OSD did not start:" >&2; tail -5 "$r/log/osd.0.log" >&2; exit 1; }
  for _ in $(seq 1 100); do
    ceph -c "$conf" --connect-timeout 5 osd stat 2>/dev/null | grep -q "1 up" && break
    sleep 0.2
  done
  radosgw -c "$conf" -n client.rgw.a 2>> "$r/log/daemons.log"
  radosgw-admin -c "$conf" user create --uid=hub --display-name=hub \
    --access-key="$key" --secret="$secret" > /dev/null 2>&1
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  url="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
      -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
      -X PUT "$url/$bucket" || true)"
    [ "$code" = 200 ] || [ "$code" = 409 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || [ "$code" = 409 ] || { echo "rgw.sh: creating bucket $bucket: HTTP $code" >&2; tail -20 "$r/log/client.rgw.a.log" >&2; exit 1; }
  echo "$url $key $secret $bucket"
  ;;
stop)
  for p in "$r"/run/*.pid; do
    [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true
  done
  ;;
*)
  echo "usage: $0 start DIR [BUCKET] | stop DIR" >&2
  exit 2
  ;;
esac

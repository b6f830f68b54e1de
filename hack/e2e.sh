#!/usr/bin/env bash
# The end-to-end suite: etcd and kube-apiserver on loopback, the injector,
# and the clouds' SDKs against local fakes. Installs etcd (Debian's
# etcd-server) when it is missing; builds kube-apiserver from the Go module
# proxy on first use (cached in the user cache folder afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing etcd-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
    # The package's service is not wanted: the suite starts its own etcd.
    (service etcd stop || systemctl stop etcd || pkill -x etcd) >/dev/null 2>&1 || true
  else
    echo "etcd is missing: install Debian's etcd-server (apt-get install etcd-server)" >&2
    exit 1
  fi
fi

echo "== go vet (e2e)"
(cd test/e2e && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...)
echo "== go test (e2e)"
start=$(date +%s)
(cd test/e2e && go test -count=1 -timeout 45m ./...)
echo "e2e suite took $(( $(date +%s) - start ))s"

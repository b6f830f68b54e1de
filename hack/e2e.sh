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
    # The package's service is not wanted (the suite starts its own etcd on
    # a free port): policy-rc.d tells the package not to start it, so there
    # is nothing to stop afterwards, and no etcd of anyone else's is touched.
    # An existing policy-rc.d is the machine owner's: then the service is
    # stopped by its unit, never by process name.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      own_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
    if [ -n "$own_policy" ]; then
      rm -f /usr/sbin/policy-rc.d
    else
      (systemctl stop etcd.service || service etcd stop) >/dev/null 2>&1 || true
    fi
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
# Policy mode again, with the policy sync writes (sync --written-policy,
# deploy/overlays/policy-written) in place of the generic one.
echo "== go test (e2e, policy mode with the written policy)"
start=$(date +%s)
(cd test/e2e && E2E_POLICY_RULES=written go test -count=1 -timeout 20m -run 'TestPolicyMode' .)
echo "written-policy e2e took $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# Runs the end-to-end suite (test/e2e) against the cluster of hack/cluster/cluster.sh: rebuilds and
# imports the images, runs the tests (which install the operator with the Helm chart), and writes the timings they measured into
# docs/benchmarks.md. Usage: hack/cluster/e2e.sh [go test flags, e.g. -run TestHealing]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$root/hack/cluster/cluster.sh"
"$cluster" running || { echo "e2e: the test cluster is not running; run 'make cluster-up' first" >&2; exit 1; }
dir=$("$cluster" dir)
# kubectl and helm keep caches under $HOME by default; the cluster's go with its state.
export KUBECACHEDIR="$dir/cache/kube" HELM_CACHE_HOME="$dir/cache/helm" HELM_CONFIG_HOME="$dir/config/helm" HELM_DATA_HOME="$dir/data/helm"

"$cluster" images
helm=$(make -s -C "$root" --no-print-directory print-helm)

report="$dir/e2e-report.json"
rm -f "$report"
status=0
KUBECONFIG=$("$cluster" kubeconfig) KUBECTL=$("$cluster" kubectl) HELM="$helm" FREIGHTCAST_CLUSTER_DIR="$dir" \
  FREIGHTCAST_E2E_IMAGE=$("$cluster" image-ref freightcast) FREIGHTCAST_E2E_NATS_IMAGE=$("$cluster" image-ref nats) \
  FREIGHTCAST_E2E_PROBE_IMAGE=$("$cluster" image-ref netprobe) \
  FREIGHTCAST_E2E_NODE_IP=$("$cluster" node-ip) FREIGHTCAST_E2E_REPORT="$report" \
  go test -tags e2e -count=1 -v -timeout 45m "$@" ./test/e2e/ || status=$?
if [ -f "$report" ]; then
  go run ./hack/e2ereport -report "$report" -doc "$root/docs/benchmarks.md" -status "$status"
fi
exit $status

#!/usr/bin/env bash
# The operator's main job on a real Kubernetes, in one command: the test cluster up (built from
# source by cluster.sh), the operator and NATS installed with the Helm chart and the image built
# here, the samples applied, and the endpoints printed. `make cluster-down` removes all of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cluster="$root/hack/cluster/cluster.sh"
ns=${DEMO_NAMESPACE:-freightcast-demo}

"$cluster" running || "$cluster" up
"$cluster" images
kubectl=$("$cluster" kubectl)
dir=$("$cluster" dir)
export KUBECACHEDIR="$dir/cache/kube" HELM_CACHE_HOME="$dir/cache/helm" HELM_CONFIG_HOME="$dir/config/helm" HELM_DATA_HOME="$dir/data/helm"
export KUBECONFIG
KUBECONFIG=$("$cluster" kubeconfig)
helm=$(make -s -C "$root" --no-print-directory print-helm)
image=$("$cluster" image-ref freightcast)
nats_image=$("$cluster" image-ref nats)
# The operator and NATS, installed with the Helm chart as docs/install.md describes.
"$kubectl" create namespace freightcast-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" label namespace freightcast-system pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
"$helm" upgrade --install freightcast "$root/charts/freightcast" --namespace freightcast-system --wait --timeout 5m \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set nats.image.repository="${nats_image%:*}" --set nats.image.tag="${nats_image##*:}" --set nats.storage.size=1Gi

"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" label namespace "$ns" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
"$kubectl" -n "$ns" apply -f "$root/config/samples/"
"$kubectl" -n "$ns" wait --for condition=Ready predictionmodel/freight-delay-risk --timeout 5m
"$kubectl" -n "$ns" wait --for condition=Ready freightpipeline/eu-lanes --timeout 5m

# NodePort twins of the two client-facing Services: kube-proxy answers them on 127.0.0.1 only.
nodeport() {
  local svc=$1
  "$kubectl" -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: $svc-local
spec:
  type: NodePort
  selector: $("$kubectl" -n "$ns" get service "$svc" -o jsonpath='{.spec.selector}')
  ports:
  - {name: http, port: 8080, targetPort: http}
YAML
  "$kubectl" -n "$ns" get service "$svc-local" -o jsonpath='{.spec.ports[0].nodePort}'
}
ingest_port=$(nodeport eu-lanes-ingest)
model_port=$(nodeport freight-delay-risk-predictor)

"$kubectl" get nodes
"$kubectl" -n "$ns" get fp,pm,deployments,pods
cat <<TXT

Freightcast is running on a real single-node Kubernetes (namespace $ns).

  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$kubectl

Send freight events to the pipeline's ingestion Service:
  curl -sS -X POST -H 'Content-Type: application/json' --data @models/freight-delay-risk.events.json http://127.0.0.1:$ingest_port/v1/events

Read a prediction by event id:
  curl -sS http://127.0.0.1:$ingest_port/v1/predictions/shp-20261127-0001

Call the model over the Open Inference Protocol:
  curl -sS -X POST -H 'Content-Type: application/json' --data @models/freight-delay-risk.request.json http://127.0.0.1:$model_port/v2/models/freight-delay-risk/infer

Watch the pool follow the queue:  kubectl -n $ns get fp eu-lanes -w
Stop everything:                  make cluster-down
TXT

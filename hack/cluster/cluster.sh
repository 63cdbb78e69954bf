#!/usr/bin/env bash
# A real single-node Kubernetes for the end-to-end tests, built from source on this machine.
#
# There is no Docker engine and no registry here, so kind is out. Instead: etcd and every Kubernetes
# component are built from the Go module proxy (hack/k8s-binaries.sh), containerd, runc, the CNI
# plugins, iptables and ipset come from Debian, and the images (freightcast, nats-server, CoreDNS,
# pause, and the tests' netprobe) are static Go binaries packed by hack/imagearchive and imported
# into containerd. NetworkPolicies are enforced by kube-router's firewall (and nothing else of
# kube-router), built from its Go module and run next to kube-proxy.
#
# Usage: hack/cluster/cluster.sh up | down | leftovers | images | status | running | kubeconfig | kubectl | dir | node-ip | image-ref NAME
#
# What it owns, and nothing else: its state directory ($FREIGHTCAST_CLUSTER_DIR, default
# /var/lib/freightcast-cluster: certificates, etcd, containerd root and state, kubelet root, CNI
# config and IPAM, pod logs, volumes, logs), the bridge fcbr0, the iptables chains its kubelet,
# kube-proxy, kube-router and CNI plugins create (KUBE-*, CNI-*), the ipsets kube-router creates
# (KUBE-SRC-*, KUBE-DST-*, and TMP-* while it swaps them in) and the nftables tables iptables-nft
# creates under those chains (both only where they were not there before `up`), its entries in
# the few host paths those daemons use whatever they are told (HOST_PATHS below), and the processes
# it starts (recorded with their PIDs; `down` stops exactly those, and the containerd shims they
# started). The sysctls it or the kubelet change are recorded first and restored by `down`, which
# then lists whatever of all this is still there and fails if anything is (`leftovers` runs that
# check alone). Images and built binaries are cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/freightcast so that a fresh clone reuses them.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${FREIGHTCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/freightcast}
D=${FREIGHTCAST_CLUSTER_DIR:-/var/lib/freightcast-cluster}
NODE=freightcast-node
BRIDGE=fcbr0
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
ETCD_CLIENT=127.0.0.1:12379
ETCD_PEER=127.0.0.1:12380
API_PORT=6443
COREDNS_VERSION=v1.12.4
# The NetworkPolicy enforcer. kube-network-policies (SIG Network's) would be the first choice, but it
# sends packets to userspace with nftables' `queue` expression, and these hosts' kernels are built
# without it (CONFIG_NFT_QUEUE is off; `nft add rule ... queue` fails with ENOENT). kube-router's
# firewall needs only iptables (here iptables-nft over nft_compat) and ipset, which they have. The
# advisory against v2.1.0 (GHSA-phqm-jgc3-qf8g: unvalidated external and load-balancer IPs) is in
# its service proxy, which this cluster does not run: only --run-firewall. kube-router skips
# enforcement, with only a log line, when `ipset save` fails: the e2e suite's refusals prove it is on.
KUBE_ROUTER_VERSION=v2.1.0
KUBE_ROUTER_HEALTH_PORT=20244
# kubectl and helm keep caches under $HOME by default; this cluster's stay in its state dir.
export KUBECACHEDIR="$D/cache/kube" HELM_CACHE_HOME="$D/cache/helm" HELM_CONFIG_HOME="$D/config/helm" HELM_DATA_HOME="$D/data/helm"

# Images the cluster and the e2e suite run. The freightcast image is tagged with its binary's digest
# (written to $cache/images/freightcast.ref), so a rebuilt binary rolls the operator and its pods.
IMG_PAUSE=freightcast.local/pause:3.10
IMG_COREDNS=freightcast.local/coredns:$COREDNS_VERSION
IMG_NATS_VERSION=$(awk '$1 == "github.com/nats-io/nats-server/v2" { print $2; exit }' "$root/go.mod")
IMG_NATS=freightcast.local/nats-server:$IMG_NATS_VERSION
IMG_NETPROBE=freightcast.local/netprobe:e2e

# Kernel settings a node needs or that the kubelet and kube-proxy set; `down` restores each one.
SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

kubectl_() { "$bindir/kubectl" --kubeconfig "$D/admin.kubeconfig" "$@"; }
ctr_() { ctr --address "$D/containerd/containerd.sock" --namespace k8s.io "$@"; }

node_ip() {
  ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }'
}

# --- building ---------------------------------------------------------------------------------

ensure_host_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v ipset >/dev/null || missing+=(ipset)
  command -v nft >/dev/null || missing+=(nftables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  { command -v ip && command -v ss; } >/dev/null || missing+=(iproute2)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing from Debian: ${missing[*]}"
  # Another apt-get (a neighbour's install on a shared machine) may hold the lock for a while.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
}

build_coredns() {
  local out="$cache/coredns/$COREDNS_VERSION/coredns"
  [ -x "$out" ] && { echo "$out"; return; }
  local mod="$cache/coredns/src-$COREDNS_VERSION"
  mkdir -p "$mod"
  # Only the plugins the Corefile uses: the default build links every cloud SDK and takes far longer.
  cat >"$mod/main.go" <<'GO'
// Command coredns is CoreDNS with the plugins a cluster DNS needs, built from its Go module.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The order plugins run in, as CoreDNS's plugin.cfg orders them.
func init() {
	dnsserver.Directives = []string{"reload", "ready", "health", "errors", "log", "cache", "kubernetes", "loop"}
}

func main() { coremain.Run() }
GO
  if [ ! -f "$mod/go.sum" ]; then
    (cd "$mod" && rm -f go.mod && go mod init freightcast.local/coredns >/dev/null 2>&1 &&
      GOFLAGS=-mod=mod go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2 && go mod tidy >&2)
  fi
  log "building CoreDNS $COREDNS_VERSION"
  (cd "$mod" && CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags=-s -o "$out.tmp" . && mv "$out.tmp" "$out")
  echo "$out"
}

build_kube_router() {
  local dir="$cache/kube-router/$KUBE_ROUTER_VERSION"
  [ -x "$dir/kube-router" ] && { echo "$dir/kube-router"; return; }
  log "building kube-router $KUBE_ROUTER_VERSION (its firewall enforces NetworkPolicies)"
  mkdir -p "$dir/.gobin"
  GOBIN="$dir/.gobin" CGO_ENABLED=0 GOTOOLCHAIN=local go install -trimpath \
    -ldflags "-s -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" >&2
  mv "$dir/.gobin/kube-router" "$dir/kube-router" && rmdir "$dir/.gobin"
  echo "$dir/kube-router"
}

# build_images writes the image archives into $cache/images and prints nothing.
build_images() {
  local img="$cache/images" pack="$cache/images/imagearchive"
  mkdir -p "$img"
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$pack" ./hack/imagearchive)
  # Small and ours: rebuilt every time, so a change to hack/pause is never left behind.
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$img/pause" ./hack/pause)
  "$pack" -o "$img/pause.tar" -ref "$IMG_PAUSE" -entrypoint /pause "$img/pause:/pause"
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$img/netprobe" ./hack/netprobe)
  "$pack" -o "$img/netprobe.tar" -ref "$IMG_NETPROBE" -entrypoint /netprobe "$img/netprobe:/netprobe"
  if [ ! -f "$img/coredns-$COREDNS_VERSION.tar" ]; then
    local bin
    bin=$(build_coredns)
    "$pack" -o "$img/coredns-$COREDNS_VERSION.tar" -ref "$IMG_COREDNS" -entrypoint /coredns "$bin:/coredns"
  fi
  if [ ! -f "$img/nats-$IMG_NATS_VERSION.tar" ]; then
    log "building nats-server $IMG_NATS_VERSION"
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$img/nats-server" github.com/nats-io/nats-server/v2)
    "$pack" -o "$img/nats-$IMG_NATS_VERSION.tar" -ref "$IMG_NATS" -entrypoint /nats-server "$img/nats-server:/nats-server"
  fi
  # The product image is rebuilt every time: it is what the tests test.
  make -C "$root" --no-print-directory build >&2
  local ref
  ref="freightcast.local/freightcast:e2e-$(sha256sum "$root/bin/freightcast" | cut -c1-12)"
  log "packing $ref"
  "$pack" -o "$img/freightcast.tar" -ref "$ref" -entrypoint /freightcast "$root/bin/freightcast:/freightcast"
  echo "$ref" >"$img/freightcast.ref"
}

import_images() {
  local t
  for t in pause.tar netprobe.tar "coredns-$COREDNS_VERSION.tar" "nats-$IMG_NATS_VERSION.tar" freightcast.tar; do
    ctr_ images import --snapshotter overlayfs "$cache/images/$t" >/dev/null
  done
  log "images imported: $(ctr_ images ls -q | grep -c freightcast.local) freightcast.local images"
}

# --- certificates -----------------------------------------------------------------------------

# sign NAME CN ORG EXT: a P-256 key and a certificate signed by the cluster CA.
sign() {
  local name=$1 cn=$2 org=$3 ext=$4 subj="/CN=$2"
  [ -n "$org" ] && subj="/O=$org/CN=$cn"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$D/pki/$name.key" \
    -subj "$subj" -out "$D/pki/$name.csr" 2>/dev/null
  printf '%b' "$ext" >"$D/pki/$name.ext"
  openssl x509 -req -in "$D/pki/$name.csr" -CA "$D/pki/ca.crt" -CAkey "$D/pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$D/pki/$name.ext" -out "$D/pki/$name.crt" 2>/dev/null
}

make_pki() {
  local ip=$1 client='keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
  mkdir -p "$D/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=freightcast-test-ca \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$D/pki/ca.key" -out "$D/pki/ca.crt" 2>/dev/null
  sign apiserver kube-apiserver "" "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$ip\n"
  sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "$client"
  sign admin freightcast-admin system:masters "$client"
  sign controller-manager system:kube-controller-manager "" "$client"
  sign scheduler system:kube-scheduler "" "$client"
  sign kubelet "system:node:$NODE" system:nodes "$client"
  sign kube-proxy system:kube-proxy "" "$client"
  sign kube-router system:kube-router "" "$client"
  sign kubelet-serving "system:node:$NODE" system:nodes "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:$NODE,DNS:localhost,IP:127.0.0.1,IP:$ip\n"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$D/pki/sa.key" 2>/dev/null
  openssl pkey -in "$D/pki/sa.key" -pubout -out "$D/pki/sa.pub"
  chmod 600 "$D"/pki/*.key
}

kubeconfig() {
  local name=$1 kc="$D/$1.kubeconfig"
  "$bindir/kubectl" config --kubeconfig "$kc" set-cluster freightcast-test --server "https://127.0.0.1:$API_PORT" \
    --certificate-authority "$D/pki/ca.crt" --embed-certs >/dev/null
  "$bindir/kubectl" config --kubeconfig "$kc" set-credentials "$name" --client-certificate "$D/pki/$name.crt" \
    --client-key "$D/pki/$name.key" --embed-certs >/dev/null
  "$bindir/kubectl" config --kubeconfig "$kc" set-context freightcast-test --cluster freightcast-test --user "$name" >/dev/null
  "$bindir/kubectl" config --kubeconfig "$kc" use-context freightcast-test >/dev/null
}

# --- processes --------------------------------------------------------------------------------

# start NAME BINARY ARGS...: runs detached, logs to $D/logs/NAME.log, records the PID.
start() {
  local name=$1
  shift
  setsid "$@" >"$D/logs/$name.log" 2>&1 </dev/null &
  echo "$name $! $1" >>"$D/pids"
}

# alive PID EXE: the PID still runs the binary we started (PIDs are reused).
alive() {
  [ -e "/proc/$1/exe" ] && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$(readlink -f "$2")" ]
}

wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${timeout}s waiting for $what; last log lines:"
      tail -n 20 "$D"/logs/*.log >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

check_running() {
  [ -f "$D/pids" ] || return 1
  local name pid exe
  while read -r name pid exe; do
    alive "$pid" "$exe" || return 1
  done <"$D/pids"
}

# Host paths that containerd, the CNI library and the kubelet use whatever their configuration
# says: containerd's shim sockets, CNI result caches, the kubelet's device-plugin socket and its
# /var/log/containers symlinks. The ones that did not exist before `up` are removed by `down`; in
# the others `down` removes only this cluster's entries.
HOST_PATHS=(/run/containerd /var/lib/cni /var/lib/kubelet /var/log/containers)

record_host_paths() {
  local p
  : >"$D/created-host-paths"
  for p in "${HOST_PATHS[@]}"; do
    [ -e "$p" ] || echo "$p" >>"$D/created-host-paths"
  done
}

# containerd_running: a live containerd process (exited ones may linger as zombies where PID 1 does
# not reap orphans).
containerd_running() {
  local pid
  for pid in $(pgrep -x containerd || true); do
    [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] || return 0
  done
  return 1
}

clean_host_paths() {
  local p id
  for p in "${HOST_PATHS[@]}"; do
    if grep -qxF "$p" "$D/created-host-paths" 2>/dev/null; then
      # Another containerd may have started meanwhile and use it.
      if [ "$p" = /run/containerd ] && containerd_running; then continue; fi
      rm -rf "$p"
      continue
    fi
    case "$p" in
      /var/log/containers)
        find "$p" -maxdepth 1 -type l -lname "$D/*" -delete 2>/dev/null || true ;;
      /var/lib/cni)
        for f in "$p"/results/freightcast-*-eth0; do
          [ -e "$f" ] || continue
          id=${f#"$p"/results/freightcast-}
          rm -f "$f" "$p/results/cni-loopback-${id%-eth0}-lo"
        done ;;
    esac
  done
}

# --- up ---------------------------------------------------------------------------------------

write_configs() {
  local ip=$1
  mkdir -p "$D/containerd" "$D/cni/net.d" "$D/cni/ipam" "$D/kubelet" "$D/pod-logs" "$D/etcd"
  cat >"$D/containerd/config.toml" <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$D/containerd/containerd.sock"

[ttrpc]
  address = "$D/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$D/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IMG_PAUSE"
  # Without CAP_SYS_RESOURCE, runc cannot lower oom_score_adj and every sandbox fails
  # ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$D/containerd/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
EOF
  cat >"$D/cni/net.d/10-freightcast.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "freightcast",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$D/cni/ipam",
        "ranges": [[{"subnet": "10.244.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$D/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# 0.0.0.0 so that the API server reaches it at the node address for logs, exec and port-forward.
address: 0.0.0.0
port: 10250
healthzBindAddress: 127.0.0.1
tlsCertFile: $D/pki/kubelet-serving.crt
tlsPrivateKeyFile: $D/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $D/pki/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
cgroupDriver: cgroupfs
# These hosts are cgroup v1, which 1.35+ refuses unless told otherwise.
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: $D/pod-logs
# Imported images cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
serializeImagePulls: false
maxPods: 110
EOF
  cat >"$D/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $D/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
# NodePorts answer on loopback only: tests reach the cluster's Services from this host that way.
nodePortAddresses: ["127.0.0.0/8"]
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
EOF
}

save_sysctls() {
  : >"$D/sysctl.saved"
  local k v
  for k in "${SYSCTLS[@]}"; do
    v=$(sysctl -n "$k" 2>/dev/null) || continue
    printf '%s=%s\n' "$k" "$v" >>"$D/sysctl.saved"
  done
}

restore_sysctls() {
  [ -f "$D/sysctl.saved" ] || return 0
  local line
  while IFS= read -r line; do
    sysctl -qw "$line" 2>/dev/null || log "could not restore $line"
  done <"$D/sysctl.saved"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (containerd, kubelet, iptables)"
  if check_running; then
    log "already up ($D)"
    return 0
  fi
  [ -f "$D/pids" ] && { log "a previous cluster was not stopped cleanly; stopping it first"; down; }
  trap 'log "up failed; the logs are in $D/logs, and make cluster-down stops what was started"' ERR
  ensure_host_packages
  bindir=$("$root/hack/k8s-binaries.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local kube_router
  kube_router=$(build_kube_router)
  build_images

  local port
  for port in 6443 10250 10257 10259 12379 12380 10256 10249 10248 "$KUBE_ROUTER_HEALTH_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; is another cluster running?"; fi
  done
  local ip
  ip=$(node_ip)
  [ -n "$ip" ] || die "no global IPv4 address on this host"
  log "state in $D, node $NODE at $ip"
  mkdir -p "$D/logs"
  : >"$D/pids"
  echo "$bindir" >"$D/bindir"
  save_sysctls
  record_host_paths
  record_ipsets
  record_nft_tables
  sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  make_pki "$ip"
  local k
  for k in admin controller-manager scheduler kubelet kube-proxy kube-router; do kubeconfig "$k"; done
  write_configs "$ip"

  start containerd /usr/bin/containerd --config "$D/containerd/config.toml"
  start etcd "$bindir/etcd" --name default --data-dir "$D/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "default=http://$ETCD_PEER" --listen-metrics-urls "" --log-level warn
  wait_for containerd 30 test -S "$D/containerd/containerd.sock"
  import_images
  wait_for etcd 30 curl -fsS "http://$ETCD_CLIENT/health"

  start kube-apiserver "$bindir/kube-apiserver" --advertise-address "$ip" --secure-port "$API_PORT" \
    --etcd-servers "http://$ETCD_CLIENT" --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$D/pki/ca.crt" --tls-cert-file "$D/pki/apiserver.crt" --tls-private-key-file "$D/pki/apiserver.key" \
    --kubelet-client-certificate "$D/pki/apiserver-kubelet-client.crt" --kubelet-client-key "$D/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$D/pki/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$D/pki/sa.pub" --service-account-signing-key-file "$D/pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged=true --profiling=false
  wait_for kube-apiserver 60 kubectl_ get --raw /readyz
  start kube-controller-manager "$bindir/kube-controller-manager" --kubeconfig "$D/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$D/controller-manager.kubeconfig" --authorization-kubeconfig "$D/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$D/pki/sa.key" --root-ca-file "$D/pki/ca.crt" \
    --cluster-signing-cert-file "$D/pki/ca.crt" --cluster-signing-key-file "$D/pki/ca.key" \
    --allocate-node-cidrs --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 --service-cluster-ip-range "$SERVICE_CIDR"
  start kube-scheduler "$bindir/kube-scheduler" --kubeconfig "$D/scheduler.kubeconfig" \
    --authentication-kubeconfig "$D/scheduler.kubeconfig" --authorization-kubeconfig "$D/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false
  start kubelet "$bindir/kubelet" --config "$D/kubelet/config.yaml" --kubeconfig "$D/kubelet.kubeconfig" \
    --root-dir "$D/kubelet" --hostname-override "$NODE" --node-ip "$ip" --v 1
  start kube-proxy "$bindir/kube-proxy" --config "$D/kube-proxy.yaml"

  wait_for "node $NODE Ready" 120 kubectl_ wait --for condition=Ready "node/$NODE" --timeout 2s
  # NetworkPolicies: kube-router's firewall only. It reads its node's addresses at start, so it
  # starts once the kubelet has registered the node, and before the first pod (CoreDNS).
  kubectl_ apply -f "$root/hack/cluster/kube-router.yaml" >/dev/null
  start kube-router "$kube_router" --kubeconfig "$D/kube-router.kubeconfig" --hostname-override "$NODE" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --service-cluster-ip-range "$SERVICE_CIDR" --health-port "$KUBE_ROUTER_HEALTH_PORT" --metrics-port 0
  wait_for kube-router 60 curl -fsS "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz"
  wait_for "the default ServiceAccount" 60 kubectl_ -n default get serviceaccount default
  sed "s|COREDNS_IMAGE|$IMG_COREDNS|" "$root/hack/cluster/coredns.yaml" | kubectl_ apply -f - >/dev/null
  wait_for CoreDNS 120 kubectl_ -n kube-system rollout status deployment/coredns --timeout 2s
  make_volumes
  log "up in ${SECONDS}s: export KUBECONFIG=$D/admin.kubeconfig"
}

# make_volumes offers static hostPath PersistentVolumes (the cluster has no provisioner) for claims
# without a storage class, such as the chart's NATS StatefulSet.
make_volumes() {
  local i
  for i in 0 1 2; do
    # The NATS pods run as an unprivileged user, and hostPath volumes ignore fsGroup.
    mkdir -p "$D/volumes/pv-$i" && chmod 1777 "$D/volumes/pv-$i"
    kubectl_ apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: freightcast-test-pv-$i
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $D/volumes/pv-$i, type: Directory}
YAML
  done
}

# --- down -------------------------------------------------------------------------------------

# stop_recorded NAME...: SIGTERM the named recorded processes, then SIGKILL after a grace period.
stop_recorded() {
  [ -f "$D/pids" ] || return 0
  local name pid exe want n
  for want in "$@"; do
    while read -r name pid exe; do
      [ "$name" = "$want" ] || continue
      alive "$pid" "$exe" || continue
      kill -TERM "$pid" 2>/dev/null || true
      for n in $(seq 1 40); do alive "$pid" "$exe" || break; sleep 0.25; done
      if alive "$pid" "$exe"; then log "$name ($pid) ignored SIGTERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$D/pids"
  done
}

down() {
  [ -d "$D" ] || { log "nothing to stop ($D does not exist)"; return 0; }
  bindir=$(cat "$D/bindir" 2>/dev/null || true)
  # Stop the controllers first so nothing recreates pods, then have the kubelet tear every pod down:
  # that runs the CNI DEL that removes each pod's veth, IPAM lease and iptables rules.
  stop_recorded kube-controller-manager kube-scheduler
  if [ -n "$bindir" ] && check_pid kubelet && kubectl_ get --raw /readyz >/dev/null 2>&1; then
    kubectl_ delete pods --all --all-namespaces --grace-period 1 --wait=false >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ] && ctr_ tasks ls -q 2>/dev/null | grep -q .; do sleep 1; done
    # kubelet removes sandboxes lazily; give it a moment to run their CNI teardown.
    while [ $SECONDS -lt $deadline ] && [ -n "$(ls -A "$D/cni/ipam/freightcast" 2>/dev/null | grep -v -e lock -e last_reserved)" ]; do sleep 1; done
  fi
  stop_recorded kubelet kube-proxy kube-router kube-apiserver etcd
  # Shims outlive containerd by design; stop those that belong to this containerd.
  local pid
  for pid in $(pgrep -f "containerd-shim.*-address $D/containerd/containerd.sock" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  stop_recorded containerd
  if [ -n "$bindir" ] && [ -x "$bindir/kube-proxy" ]; then "$bindir/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  remove_iptables_leftovers
  remove_ipsets
  remove_nft_tables
  ip link delete "$BRIDGE" 2>/dev/null || true
  # Pod volumes, netns and overlay mounts live under the state dir; unmount deepest first.
  awk -v d="$D" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  restore_sysctls
  clean_host_paths
  local keep="$cache/cluster-logs/last"
  rm -rf "$keep" && mkdir -p "$keep" && cp -r "$D/logs/." "$keep/" 2>/dev/null || true
  # What `leftovers` compares the host with once the state dir is gone.
  cp "$D/pids" "$D/sysctl.saved" "$D/created-host-paths" "$D/ipsets.before" "$D/nft-tables.before" "$keep/" 2>/dev/null || true
  rm -rf "$D"
  local left
  left=$(leftovers) || true
  if [ -n "$left" ]; then
    log "down; logs kept in $keep; but these are still there:"
    echo "$left" >&2
    return 1
  fi
  log "down, nothing left behind; logs kept in $keep"
}

# leftovers lists what a stopped cluster must not leave: the processes it recorded, iptables
# chains and jumps of kube-proxy, kube-router, the kubelet and the CNI plugins, kube-router's
# ipsets, the bridge, mounts and state under the state dir, and the containerd shims it started.
# Prints nothing when all is clean.
leftovers() {
  local ipt t p name pid exe line k v rec="$D"
  [ -f "$rec/pids" ] || rec="$cache/cluster-logs/last"
  [ -d "$D" ] && echo "state dir $D"
  if [ -f "$rec/pids" ]; then
    while read -r name pid exe; do
      if alive "$pid" "$exe"; then echo "process $name ($pid)"; fi
    done <"$rec/pids"
  fi
  if [ "$rec" != "$D" ] && [ -f "$rec/sysctl.saved" ]; then
    while IFS= read -r line; do
      k=${line%%=*} v=$(sysctl -n "${line%%=*}" 2>/dev/null) || continue
      [ "$k=$v" = "$line" ] || echo "sysctl $k=$v, was ${line#*=}"
    done <"$rec/sysctl.saved"
    while IFS= read -r p; do
      [ -e "$p" ] && echo "host path $p (did not exist before up)"
    done <"$rec/created-host-paths"
  fi
  for p in $(pgrep -f "containerd-shim.*-address $D/" || true); do echo "containerd shim $p"; done
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in nat filter mangle; do
      "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-N (KUBE|CNI)-|-j (KUBE|CNI)-' | sed "s/^/$ipt -t $t: /" || true
    done
  done
  if command -v ipset >/dev/null; then
    local before="$rec/ipsets.before"
    [ -f "$before" ] || before=/dev/null
    ipset list -n 2>/dev/null | grep -E '^(KUBE-SRC-|KUBE-DST-|TMP-)' | grep -vxF -f "$before" |
      sed 's/^/ipset /' || true
  fi
  if command -v nft >/dev/null; then
    local tables="$rec/nft-tables.before"
    [ -f "$tables" ] || tables=/dev/null
    nft list tables 2>/dev/null | grep -vxF -f "$tables" | sed 's/^/nftables /' || true
  fi
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "bridge $BRIDGE"
  awk -v d="$D" 'index($2, d) == 1 { print "mount " $2 }' /proc/self/mounts
  return 0
}

# kube-router's ipsets are named KUBE-SRC-*/KUBE-DST-* (and TMP-* while it swaps them in); any such
# set that was there before `up` belongs to someone else.
record_ipsets() {
  : >"$D/ipsets.before"
  command -v ipset >/dev/null || return 0
  ipset list -n 2>/dev/null >"$D/ipsets.before" || true
}

# iptables here is iptables-nft: the first rule the kubelet, kube-proxy or kube-router writes in
# a table creates that nftables table (ip filter, ip6 nat, ...) with its base chains, which stay,
# empty, once their rules are gone. `down` deletes the tables that were not there before `up` and
# hold no rule by then (a table someone else has written to since is left alone).
record_nft_tables() {
  : >"$D/nft-tables.before"
  command -v nft >/dev/null || return 0
  nft list tables 2>/dev/null >"$D/nft-tables.before" || true
}

remove_nft_tables() {
  command -v nft >/dev/null || return 0
  local family name
  while read -r _ family name; do
    grep -qxF "table $family $name" "$D/nft-tables.before" 2>/dev/null && continue
    if nft list table "$family" "$name" 2>/dev/null | grep -qvE '^[[:space:]]*(table |chain |type |policy |}|$)'; then
      log "nftables table $family $name holds rules; left alone"
      continue
    fi
    nft delete table "$family" "$name" 2>/dev/null || log "could not delete nftables table $family $name"
  done < <(nft list tables 2>/dev/null)
}

remove_ipsets() {
  command -v ipset >/dev/null || return 0
  local set
  for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-SRC-|KUBE-DST-|TMP-)' || true); do
    grep -qxF "$set" "$D/ipsets.before" 2>/dev/null && continue
    ipset destroy "$set" 2>/dev/null || log "could not destroy ipset $set"
  done
}

check_pid() {
  local name pid exe
  while read -r name pid exe; do
    [ "$name" = "$1" ] && alive "$pid" "$exe" && return 0
  done <"$D/pids"
  return 1
}

# remove_iptables_leftovers deletes the KUBE-* and CNI-* chains (and the jumps to them) that the
# kubelet creates and that pods torn down without a CNI DEL may leave; kube-proxy --cleanup has
# already removed its own.
remove_iptables_leftovers() {
  local ipt t rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in nat filter mangle; do
      { "$ipt" -t "$t" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j (KUBE|CNI)-' || true; } | while read -r rule; do
        eval "$ipt -t $t ${rule/-A/-D}" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }'); do
        "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }'); do
        "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

status() {
  if check_running; then
    bindir=$(cat "$D/bindir")
    kubectl_ get nodes -o wide
    kubectl_ get pods -A
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  leftovers)
    left=$(leftovers)
    [ -z "$left" ] && { echo "nothing left of the test cluster"; exit 0; }
    echo "$left"
    exit 1
    ;;
  images)
    build_images
    if check_running; then import_images; fi
    ;;
  status) status ;;
  kubeconfig) echo "$D/admin.kubeconfig" ;;
  running) check_running ;;
  dir) echo "$D" ;;
  node-ip) node_ip ;;
  kubectl) "$root/hack/k8s-binaries.sh" kubectl | sed 's|$|/kubectl|' ;;
  image-ref)
    case "${2:-}" in
      freightcast) cat "$cache/images/freightcast.ref" ;;
      nats) echo "$IMG_NATS" ;;
      netprobe) echo "$IMG_NETPROBE" ;;
      *) die "image-ref freightcast|nats|netprobe" ;;
    esac
    ;;
  *) echo "usage: $0 up | down | leftovers | images | status | running | kubeconfig | kubectl | dir | node-ip | image-ref NAME" >&2; exit 2 ;;
esac

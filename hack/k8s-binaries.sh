#!/usr/bin/env bash
# Builds Kubernetes components and etcd from the Go module proxy into a cache outside the clone.
#
# Nothing prebuilt can be downloaded on our machines (no setup-envtest, no release tarballs), but every
# component is a Go module. k8s.io/kubernetes cannot be required directly because its go.mod replaces
# the staging modules (k8s.io/api, ...) with relative paths; a scratch module that requires it and
# replaces each staging module with its published v0.X.Y tag builds the same binaries.
#
# Usage: hack/k8s-binaries.sh [component ...]   (default: etcd kube-apiserver, what envtest needs)
# Components: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
# Prints the bin directory on stdout (usable as KUBEBUILDER_ASSETS); progress goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${FREIGHTCAST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/freightcast}

# The Kubernetes patch release matching the client libraries in go.mod (k8s.io/api v0.37.2 -> v1.37.2).
if [ -z "${K8S_VERSION:-}" ]; then
  api=$(awk '{ for (i = 1; i < NF; i++) if ($i == "k8s.io/api") { print $(i + 1); exit } }' "$root/go.mod")
  [ -n "$api" ] || { echo "k8s-binaries: k8s.io/api not found in go.mod; set K8S_VERSION" >&2; exit 1; }
  K8S_VERSION="v1.${api#v0.}"
fi
ETCD_VERSION=${ETCD_VERSION:-v3.6.6}

staging="v0.${K8S_VERSION#v1.}"
bindir="$cache/k8s/$K8S_VERSION/bin"
mkdir -p "$bindir"

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver)

find_missing() {
  missing=()
  for c in "${components[@]}"; do
    [ -x "$bindir/$c" ] || missing+=("$c")
  done
}
find_missing
if [ ${#missing[@]} -eq 0 ]; then
  echo "$bindir"
  exit 0
fi
# Several test runs of one machine may ask at once (parallel worktrees, make test beside
# make cluster-up): one builds, the others wait and then find the binaries there. Without the lock
# they compiled the same component side by side and raced on its temporary file.
exec 9>"$cache/k8s/.build.lock"
flock 9
find_missing
if [ ${#missing[@]} -eq 0 ]; then
  echo "$bindir"
  exit 0
fi

log() { echo "k8s-binaries: $*" >&2; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

build_etcd() {
  local mod="$cache/k8s/src/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  cat >"$mod/main.go" <<'GO'
// Command etcd is etcd's own main, built from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  if [ ! -f "$mod/go.mod" ]; then
    (cd "$mod" && go mod init freightcast.local/etcd >/dev/null 2>&1 &&
      go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 && go mod tidy >&2)
  fi
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && go build -trimpath -ldflags=-s -o "$bindir/etcd.tmp.$$" . && mv "$bindir/etcd.tmp.$$" "$bindir/etcd")
}

k8s_module() {
  local mod="$cache/k8s/src/kubernetes-$K8S_VERSION"
  if [ ! -f "$mod/go.mod" ] || [ ! -f "$mod/.complete" ]; then
    mkdir -p "$mod"
    log "preparing scratch module for k8s.io/kubernetes $K8S_VERSION"
    local kmod
    kmod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | awk -F'"' '$2 == "GoMod" { print $4 }')
    {
      echo "module freightcast.local/kubernetes"
      echo
      echo "go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "replace %s => %s %s\n", $1, $1, v }' "$kmod"
    } >"$mod/go.mod"
    cat >"$mod/tools.go" <<'GO'
//go:build tools

// Package tools pins the component mains so that go mod tidy keeps their dependencies.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
    (cd "$mod" && go mod tidy >&2)
    touch "$mod/.complete"
  fi
  echo "$mod"
}

build_k8s() {
  local c=$1 mod pkg
  mod=$(k8s_module)
  case "$c" in
    kubectl) pkg=k8s.io/kubernetes/cmd/kubectl ;;
    *) pkg="k8s.io/kubernetes/cmd/$c" ;;
  esac
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local ldflags="-s -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  log "building $c $K8S_VERSION"
  (cd "$mod" && go build -trimpath -ldflags="$ldflags" -o "$bindir/$c.tmp.$$" "$pkg" && mv "$bindir/$c.tmp.$$" "$bindir/$c")
}

for c in "${missing[@]}"; do
  case "$c" in
    etcd) build_etcd ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | kubectl) build_k8s "$c" ;;
    *) log "unknown component $c"; exit 2 ;;
  esac
done
echo "$bindir"

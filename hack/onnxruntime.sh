#!/usr/bin/env bash
# Fetches the onnxruntime shared library that the ortbench benchmark anchor loads.
#
# onnxruntime is a benchmark anchor only, never a product dependency. Its prebuilt library is
# reachable here only inside the npm package onnxruntime-node, so this script packs that package
# (without installing it or running its scripts) into the cache and extracts the library.
# Prints the library path on stdout.
set -euo pipefail

version="${ORT_VERSION:-1.30.0}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/freightcast/onnxruntime"
member="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
lib="$cache/$version/libonnxruntime.so.1"

if [[ -s "$lib" ]]; then
	echo "$lib"
	exit 0
fi
mkdir -p "$cache/$version"
tarball="$cache/onnxruntime-node-$version.tgz"
if [[ ! -s "$tarball" ]]; then
	(cd "$cache" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
fi
tar -xzf "$tarball" -C "$cache/$version" --strip-components=5 "$member"
test -s "$lib"
echo "$lib"

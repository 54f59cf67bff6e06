#!/usr/bin/env bash
# Regenerates Sources/AgentOSProtocol/Generated/agentos.pb.swift from
# agentos.proto. Needs protoc (Debian: protobuf-compiler) and builds
# protoc-gen-swift once from the swift-protobuf version Package.swift pins,
# in a scratch dir outside the repo (it takes about a minute).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../Generated"
plugin_dir=${PROTOC_GEN_SWIFT_DIR:-/tmp/agentos-protoc-gen-swift}
version=1.39.0

command -v protoc >/dev/null || { echo "generate.sh: protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
if [ ! -x "$plugin_dir/bin/protoc-gen-swift" ]; then
    rm -rf "$plugin_dir/src"
    git clone -q https://github.com/apple/swift-protobuf.git "$plugin_dir/src"
    git -C "$plugin_dir/src" checkout -q "$version"
    swift build -c release --package-path "$plugin_dir/src" --product protoc-gen-swift
    mkdir -p "$plugin_dir/bin"
    cp "$(swift build -c release --package-path "$plugin_dir/src" --show-bin-path)/protoc-gen-swift" "$plugin_dir/bin/"
fi
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin_dir/bin/protoc-gen-swift" \
    --proto_path="$here" \
    --swift_opt=Visibility=Public \
    --swift_out="$out" \
    "$here/agentos.proto"
echo "generated $out/agentos.pb.swift"

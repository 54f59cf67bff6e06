#!/bin/sh
# Regenerates src/agentkit/_proto/agentos_pb2.py from the wire contract,
# ../AgentOSProtocol/Proto/agentos.proto. Needs protoc (Debian:
# protobuf-compiler; the committed file was made by protoc 3.21.12). The
# output imports only google.protobuf (the proto has no imports), so the
# package loads it relatively: nothing else to patch.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto_dir="$here/../AgentOSProtocol/Proto"
out="$here/src/agentkit/_proto"

command -v protoc >/dev/null || { echo "generate.sh: protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
mkdir -p "$out"
protoc --proto_path="$proto_dir" --python_out="$out" "$proto_dir/agentos.proto"
echo "generated $out/agentos_pb2.py ($(protoc --version))"

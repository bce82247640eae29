#!/usr/bin/env bash
# Regenerates committed generated code (`make generate`): the Sparkplug B payload types from
# agent/publish/sparkplugpb/sparkplug_b.proto. CI does not run this; it builds what is committed.
# Needs Debian's protobuf-compiler (protoc 3.21.12); protoc-gen-go is built at the pinned version
# into ./bin (ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "generate: protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
GOBIN="$PWD/bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PATH="$PWD/bin:$PATH" protoc --proto_path=agent/publish/sparkplugpb \
	--go_out=agent/publish/sparkplugpb --go_opt=paths=source_relative \
	agent/publish/sparkplugpb/sparkplug_b.proto
echo "generate: agent/publish/sparkplugpb/sparkplug_b.pb.go"

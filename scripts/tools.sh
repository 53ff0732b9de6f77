#!/usr/bin/env bash
# Builds buf, protoc-gen-go and protoc-gen-go-grpc at the versions pinned in tools/go.mod
# into .cache/bin. Needs only the Go module proxy; later runs are incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/bin
cd tools
go build -o ../.cache/bin/ \
  github.com/bufbuild/buf/cmd/buf \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway

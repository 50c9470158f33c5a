#!/usr/bin/env bash
# Fetches the CRI api.proto named in src/cri/proto/source.json from the Go
# module proxy and checks it: the module zip's go.sum hash (as `go mod
# download` computes it; the kubelet v1.36.3 binary's build info records the
# same h1 for k8s.io/cri-api v0.36.3), the zip's sha256, and the file's sha256.
# With --check it only compares the vendored file with the fetched one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/src/cri/proto/source.json"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$src" "$1"; }
module=$(field module) version=$(field version) path=$(field path)
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
info=$(cd "$tmp" && GOFLAGS= GONOSUMDB="$module" GOPATH="$tmp/gopath" \
  go mod download -json "$module@$version")
sum=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Sum"])' <<<"$info")
zip=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Zip"])' <<<"$info")
[ "$sum" = "$(field goSum)" ] || { echo "go.sum hash $sum != $(field goSum)" >&2; exit 1; }
[ "$(sha256sum "$zip" | cut -d' ' -f1)" = "$(field zipSha256)" ] || { echo "zip sha256 differs" >&2; exit 1; }
unzip -q -d "$tmp/x" "$zip" "$module@$version/$path"
got="$tmp/x/$module@$version/$path"
[ "$(sha256sum "$got" | cut -d' ' -f1)" = "$(field fileSha256)" ] || { echo "file sha256 differs" >&2; exit 1; }
if [ "${1:-}" = "--check" ]; then
  cmp "$got" "$here/src/cri/proto/api.proto"
  echo "src/cri/proto/api.proto is $module@$version/$path"
else
  cp "$got" "$here/src/cri/proto/api.proto"
  echo "wrote src/cri/proto/api.proto from $module@$version"
fi

#!/usr/bin/env bash
# Builds, for bench/compare.sh, an s3s-fs 0.14.1 that serves like a real S3 server: it reads
# files in blocks of S3S_READ bytes (s3s-fs reads 4 KiB at a time, each through tokio's blocking
# pool: about a CPU second per 340 MiB served) and, with S3S_NODELAY set, sends with
# TCP_NODELAY (without it each response waits ~40 ms for the client's delayed ACK; MinIO and
# AWS set it). Both are environment switches, off by default, so the binary otherwise behaves
# as s3s-fs does. The source comes from cargo's registry (`cargo install s3s-fs@0.14.1`, which
# .ci/run does, puts it there) and is patched in a copy under target/tools/s3s-fast.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/s3s-fs-0.14.1 2>/dev/null | head -n 1)
[ -n "$src" ] || { echo "s3s-fs 0.14.1 is not in cargo's registry: run .ci/run (or cargo install s3s-fs@0.14.1 --features binary) first" >&2; exit 1; }
dst=target/tools/s3s-fast
rm -rf "$dst" && mkdir -p target/tools && cp -r "$src" "$dst"
grep -q 'ReaderStream::with_capacity(file, 4096)' "$dst/src/s3.rs"
sed -i 's|ReaderStream::with_capacity(file, 4096)|ReaderStream::with_capacity(file, std::env::var("S3S_READ").ok().and_then(\|v\| v.parse().ok()).unwrap_or(4096))|' "$dst/src/s3.rs"
grep -q 'let conn = http_server.serve_connection(TokioIo::new(socket)' "$dst/src/main.rs"
sed -i 's|^\( *\)let conn = http_server.serve_connection(TokioIo::new(socket)|\1let _ = socket.set_nodelay(std::env::var_os("S3S_NODELAY").is_some());\n&|' "$dst/src/main.rs"
# Its own workspace (it sits under kopr's); the packaged Cargo.lock names versions that may
# not be in an offline registry.
printf '\n[workspace]\n' >> "$dst/Cargo.toml"
rm -f "$dst/Cargo.lock"
(cd "$dst" && cargo build --release --features binary ${CARGO_OFFLINE:+--offline})
echo "built $dst/target/release/s3s-fs"

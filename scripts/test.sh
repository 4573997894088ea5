#!/usr/bin/env bash
# Every check CI runs: formatting, lints as errors, all tests (unit, integration, CLI and
# headless Chromium), then the benchmark in its small mode as a smoke test (it fails on
# request errors, never on speed). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Licenses, duplicate versions and sources (deny.toml). `advisories` needs the RustSec
# database from GitHub, which CI cannot reach: run `cargo deny check advisories` where it can.
cargo deny --locked check licenses bans sources
cargo test --all-targets --locked
cargo run --quiet --locked --bin satellite-bench -- --instances 10000 --seconds 2 --json target/bench-smoke.json

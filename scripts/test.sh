#!/usr/bin/env bash
# Every check CI runs: formatting, lints as errors, and all tests (unit, integration,
# CLI and headless Chromium). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked

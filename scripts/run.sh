#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh: packages, hugepages), builds the ops CLI
# (.build/release/vhost-switchctl, docs/OPERATIONS.md) and runs the switch daemon with its
# embedded defaults; arguments go to vhost-switchd (see README.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
swift build -c release --product vhost-switchctl
exec swift run -c release vhost-switchd "$@"

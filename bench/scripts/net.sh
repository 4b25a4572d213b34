#!/bin/sh
# Side-by-side network benchmark of dicomshield against DCMTK (storescu,
# storescp) on generated files: see "Network" in bench/README.md. Extra
# arguments go to cmd/netbench (e.g. -runs 3, -tls, -sets CT, -o FILE).
set -eu
cd "$(dirname "$0")/.."
for tool in storescp storescu; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "net.sh: $tool not found: install DCMTK (apt-get install dcmtk)" >&2
		exit 1
	}
done
exec go run ./cmd/netbench "$@"

#!/bin/sh
# Ingest benchmark: DCMTK storescu into dicomshield serve (TLS and plain),
# Orthanc and storescp, on the same generated files; see "Ingest" in
# bench/README.md. Extra arguments go to cmd/ingestbench (e.g. -runs 5,
# -files 200, -big-mb 0 to skip the large-instance memory test, -o FILE).
set -eu
cd "$(dirname "$0")/.."
for tool in storescp storescu Orthanc; do
	command -v "$tool" >/dev/null 2>&1 || {
		case $tool in
		Orthanc) hint="apt-get install orthanc" ;;
		*) hint="apt-get install dcmtk" ;;
		esac
		echo "ingest.sh: $tool not found: $hint" >&2
		exit 1
	}
done
exec go run ./cmd/ingestbench "$@"

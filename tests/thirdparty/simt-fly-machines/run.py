"""Drive the PyPI package `simt-fly-machines` (unmodified) against `opsctl sim serve`.

Usage: FLY_SIM_URL=http://127.0.0.1:PORT python run.py   (tests/thirdparty/run.sh does this)

The package has no base-URL option: it builds `https://api.machines.dev/v1/...` itself. So
this harness mounts a `requests` transport adapter that sends those URLs to the simulator
instead, like a hosts-file entry would; the package's code and requests are untouched
otherwise. Prints `PASS name` / `FAIL name: reason` per call, exits 1 when any call fails.
"""

import os
import sys
import time

import requests
from requests.adapters import HTTPAdapter

SIM = os.environ.get("FLY_SIM_URL")
if not SIM:
    print("FLY_SIM_URL is not set (run tests/thirdparty/run.sh)", file=sys.stderr)
    sys.exit(2)
FLY = "https://api.machines.dev"
APP = "lowendinsight"
IMAGE = "registry.fly.io/lowendinsight:deployment-NEW"


class ToSimulator(HTTPAdapter):
    """Sends https://api.machines.dev/... to the simulator's http origin."""

    def send(self, request, **kwargs):
        request.url = SIM + request.url[len(FLY) :]
        return super().send(request, **kwargs)


_session_init = requests.Session.__init__


def _init(self, *args, **kwargs):
    _session_init(self, *args, **kwargs)
    self.mount(FLY, ToSimulator())


requests.Session.__init__ = _init

from simt_fly_machines.api import API  # noqa: E402  (after the adapter is in place)

fly = API(os.environ.get("FLY_API_TOKEN", "thirdparty-test-token"))
failed = 0
passed = 0


def step(name, fn):
    global failed, passed
    try:
        detail = fn()
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
        passed += 1
    except Exception as e:  # noqa: BLE001  (every failure is a FAIL line)
        reason = " ".join(str(e).split())[:300]
        if "429" in reason:
            reason += " [rate limited by the simulator]"
        print(f"FAIL {name}: {type(e).__name__}: {reason}", flush=True)
        failed += 1


def check(cond, what):
    if not cond:
        raise AssertionError(what)



state = {}


def create():
    m = fly.create(
        APP,
        IMAGE,
        ["/app/bin/server"],
        name="simt-test",
        port=52000,
        env_vars={"PORT": "50051"},
        metadata={"meter_id": "m-1"},
    )
    check(isinstance(m, dict) and "id" in m, f"created: {m}")
    check(m["region"] == "lhr", f"the package's default region lhr: {m['region']}")
    check(m["config"]["processes"][0]["cmd"] == ["/app/bin/server"], "processes kept")
    check(m["config"]["services"][0]["autostop"] in (True, "stop"), "autostop kept")
    state["id"], state["instance"] = m["id"], m["instance_id"]
    return f"{m['id']} {m['state']}"


def wait_started():
    r = fly.wait(APP, state["id"], state["instance"], "started")
    check(r.get("ok") is True, f"wait: {r}")


def list_lhr():
    ms = fly.list(APP)  # region=lhr by default
    check([m["id"] for m in ms] == [state["id"]], f"only our machine in lhr: {ms}")
    filtered = fly.list(APP, metadata_filter=("meter_id", "m-1"))
    check(len(filtered) == 1, f"metadata filter: {filtered}")
    ms_iad = fly.list(APP, region="iad")
    check(len(ms_iad) >= 2, "the scenario's machines are in iad")


def get():
    m = fly.get(APP, state["id"])
    check(m["id"] == state["id"] and m["state"] == "started", f"get: {m.get('state')}")


def stop():
    r = fly.stop(APP, state["id"])
    check(r.get("ok") is True, f"stop: {r}")
    r = fly.wait(APP, state["id"], state["instance"], "stopped")
    check(r.get("ok") is True, f"wait stopped: {r}")


def start():
    r = fly.start(APP, state["id"])
    check(r.get("previous_state") == "stopped", f"start: {r}")
    wait_started()


def destroy():
    r = fly.destroy(APP, machine_id=state["id"], force=True)
    check(r == {"ok": True}, f"destroy: {r}")
    time.sleep(0.5)
    m = fly.get(APP, state["id"])
    check(m["state"] in ("destroying", "destroyed"), f"state {m['state']}")


def main():
    print(f"simt-fly-machines against {SIM}", flush=True)
    step("API.create", create)
    step("API.wait(started)", wait_started)
    step("API.list", list_lhr)
    step("API.get", get)
    step("API.stop", stop)
    step("API.start", start)
    step("API.destroy", destroy)
    print(f"simt-fly-machines summary: {passed} PASS, {failed} FAIL", flush=True)
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()

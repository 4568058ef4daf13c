#!/usr/bin/env python3
"""The app's flash, timed: the real app under Xvfb through tauri-driver; from its window, the two
commands its Flash button calls (plan_flash, then run_flash, each with a progress channel) for
a local archive onto one drive. Prints the seconds from the plan's start to the result (the app
already running, as when the operator clicks Flash). Root, as sticks.sh runs it: the app refuses
root unless LABFLASH_GUI_ALLOW_ROOT is set, which this does for its own sandbox.

usage: app_flash.py APP TAURI_DRIVER ARCHIVE SHA256 DEVICE
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

app, driver, archive, sha256, device = sys.argv[1:6]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=900) as r:
        return json.load(r)["value"]


# Flashes from the window; resolves with the seconds taken and the engine's report.
SCRIPT = """
const done = arguments[arguments.length - 1];
const [archive, sha256, device] = arguments;
const T = window.__TAURI_INTERNALS__;
const channel = () => `__CHANNEL__:${T.transformCallback(() => {})}`;
(async () => {
  const rows = await T.invoke("list_drives", { showAll: true, imageSize: null, source: null });
  const row = rows.find((r) => r.path === device);
  if (!row) throw new Error(`${device} is not listed`);
  const spec = {
    source: { kind: "file", path: archive, sha256 },
    maxImageSize: null,
    targets: [{ path: device, identity: row.identity }],
    unmount: false,
    allowFixed: false,
    verify: true,
  };
  const start = performance.now();
  await T.invoke("plan_flash", { job: 1, spec, onProgress: channel() });
  const flashed = await T.invoke("run_flash", { job: 2, plan: 1, onProgress: channel() });
  done({ seconds: (performance.now() - start) / 1000, flashed });
})().catch((e) => done({ error: String(e && e.message ? e.message : JSON.stringify(e)) }));
"""

children = []
home = tempfile.mkdtemp(prefix="labflash-app-bench.")
try:
    display = next(n for n in range(150, 200) if not os.path.exists(f"/tmp/.X{n}-lock"))
    children.append(subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", "1024x900x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    while not os.path.exists(f"/tmp/.X11-unix/X{display}"):
        time.sleep(0.05)
    port = free_port()
    env = dict(os.environ, DISPLAY=f":{display}", LABFLASH_GUI_ALLOW_ROOT="1",
               XDG_DATA_HOME=f"{home}/data", XDG_CONFIG_HOME=f"{home}/config",
               LABFLASH_CACHE_DIR=f"{home}/cache")
    children.append(subprocess.Popen(
        [driver, "--port", str(port), "--native-port", str(free_port())], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("app_flash.py: tauri-driver did not start")
            time.sleep(0.1)
    caps = {"capabilities": {"alwaysMatch": {"browserName": "wry", "tauri:options": {"application": app}}}}
    session = request(port, "POST", "/session", caps)["sessionId"]
    request(port, "POST", f"/session/{session}/timeouts", {"script": 900_000})
    result = request(port, "POST", f"/session/{session}/execute/async",
                     {"script": SCRIPT, "args": [archive, sha256, device]})
    request(port, "DELETE", f"/session/{session}")
    if "error" in result:
        sys.exit(f"app_flash.py: the app's flash failed: {result['error']}")
    target = result["flashed"]["targets"][0]
    if not target["ok"]:
        sys.exit(f"app_flash.py: the app's flash failed: {target['error']}")
    print(f"{result['seconds']:.2f}")
finally:
    for child in reversed(children):
        try:
            os.killpg(child.pid, 9)
        except ProcessLookupError:
            pass
        child.wait()
    subprocess.run(["rm", "-rf", home])

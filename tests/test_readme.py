"""README "Running it for real", run as written: the hub block in order, then the device block
(a device added with a template, checked and run), in a fresh folder, with real processes.

The only changes are the ones the README's comments ask the installer to make: hub.yaml's
ports (this machine already has a Mosquitto on 1883 and maybe something on 8080), and the
device config's camera source (a test camera: there is no RTSP camera here) and LAN page port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from .helpers import BIN, ROOT, free_port, wait_for
from .test_gridregistry import SAMPLE

PASSWORDS = {"admin": "a long admin password", "wang": "a long grid worker password"}


def _blocks() -> list[list[str]]:
    """The sh blocks of the section, each a list of commands (continuation lines joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for body in re.findall(r"```sh\n(.*?)```", section, re.S):
        blocks.append([line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip()])
    return blocks


def _edit(path: Path, changes: dict[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern, replacement in changes.items():
        text, n = re.subn(pattern, replacement, text, flags=re.M)
        assert n, f"{path.name}: nothing matches {pattern!r}"
    path.write_text(text, encoding="utf-8")


def _web_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_the_readme_production_sequence_runs_as_written(tmp_path):
    blocks = _blocks()
    assert len(blocks) >= 2, "the section has a hub block and a device block"
    (tmp_path / "firmware_configs").symlink_to(ROOT / "firmware_configs")
    (tmp_path / "county.csv").write_text(SAMPLE, encoding="utf-8")
    mqtt_port, web_port, lan_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    daemons: list[subprocess.Popen] = []
    outputs: dict[str, str] = {}
    logs: list = []

    def run(command: str) -> None:
        command = command.replace("127.0.0.1:1883", f"127.0.0.1:{mqtt_port}")
        if command.startswith("# edit gate.yaml"):
            _edit(tmp_path / "gate.yaml", {r"^(\s*source:) rtsp://\S+": r"\1 clock://640x360@5",
                                            r"^(\s*port:) 8080\b": rf"\1 {lan_port}"})
            return
        if command.startswith("#"):
            return
        if re.match(r"xl-(hub|edge) run\b", command):
            log = open(tmp_path / f"{command.split()[0]}.log", "w")
            logs.append(log)
            daemons.append(subprocess.Popen("exec " + command, shell=True, cwd=tmp_path, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))
            if command.startswith("xl-hub"):
                wait_for(lambda: _web_ok(f"http://127.0.0.1:{web_port}/healthz"), 30, "the hub to answer")
            return
        user = re.search(r"user add .* (\w+) --role", command)
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                input=PASSWORDS[user.group(1)] + "\n" if user else None, timeout=120)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        outputs[command] = result.stdout
        if command.startswith("cp firmware_configs/hub.yaml"):  # "then edit it": this machine's ports
            _edit(tmp_path / "hub.yaml", {r"^(\s*port:) 1883\b": rf"\1 {mqtt_port}",
                                          r"^(\s*port:) 8080\b": rf"\1 {web_port}"})
    try:
        for block in blocks[:2]:
            for command in block:
                run(command)
        assert len(daemons) == 2, "the hub and the device were started"

        def listed() -> str:
            return subprocess.run("xl-hub device list --config hub.yaml", shell=True, cwd=tmp_path, env=env,
                                  capture_output=True, text=True, check=True).stdout
        wait_for(lambda: "online" in listed(), 60, "the device to be online on the hub")
        header, row = listed().splitlines()[:2]
        assert header.split()[:4] == ["DEVICE", "STATE", "KIND", "NAME"]
        assert row.split()[:5] == ["33010200001310000001", "online", "camera-box", "村口东", "小和山一网格"]
        token = next(v for k, v in outputs.items() if k.startswith("xl-hub token create")).strip()
        req = urllib.request.Request(f"http://127.0.0.1:{web_port}/api/v1/devices",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
    finally:
        for proc in reversed(daemons):
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()
    for proc in daemons:
        assert proc.returncode == 0, (tmp_path / "xl-hub.log").read_text()[-2000:]

"""JupyterLab and headless chromium for tests/test_browser.py, both stopped when the test ends.

`jupyter_lab(notebooks)` serves a directory from this interpreter's environment the way a
learner's `make lab` does, but isolated: its own Jupyter config, data, runtime and IPython
dirs (no user settings, workspaces or startup files leak in), SERVELAB_QUICK=1 and a private
gradebook in the environment the kernels inherit, port chosen by the OS. `chromium_page()` is
Debian's chromium driven by playwright through `executable_path`; playwright never downloads
a browser here.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab's own pop-ups would cover the notebook: the "get Jupyter news?" toast and the
# update check both ask the internet, which a test must not.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


@dataclass
class JupyterLab:
    """A running JupyterLab: where it listens, its token, and its log so far (for failure messages)."""

    url: str
    token: str
    root: Path
    gradebook: Path
    log: list[str] = field(default_factory=list)

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.log[-lines:])


def _isolated_env(home: Path, token: str) -> dict[str, str]:
    """The server's environment, inherited by its kernels: Jupyter and IPython state under `home`."""
    config = home / "jupyter-config"
    for name, settings in LAB_SETTINGS.items():
        path = config / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return {
        **os.environ,
        "JUPYTER_TOKEN": token,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "SERVELAB_QUICK": "1",
        "SERVELAB_GRADEBOOK": str(_gradebook(home)),
    }


def _gradebook(home: Path) -> Path:
    return home / "gradebook.sqlite"


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)  # end of output: the server exited


@contextmanager
def jupyter_lab(notebooks: Path, home: Path) -> Iterator[JupyterLab]:
    """Serve `notebooks` with JupyterLab (state kept under `home`); stop it and its kernels after.

    Ready is read from the server's own log line naming its URL, not by polling the port.
    """
    token = "servelab-browser-test"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", "--port=0",
               f"--ServerApp.root_dir={notebooks}"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it
    proc = subprocess.Popen(command, cwd=notebooks, env=_isolated_env(home, token), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        yield _wait_until_serving(lines, token, notebooks, _gradebook(home))
    finally:
        _stop(proc)


def _wait_until_serving(lines: queue.Queue, token: str, notebooks: Path, gradebook: Path) -> JupyterLab:
    log: list[str] = []
    while True:
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"JupyterLab did not start within {START_TIMEOUT_S} s:\n{''.join(log)}") from None
        if line is None:
            raise AssertionError(f"JupyterLab exited before serving:\n{''.join(log)}")
        log.append(line)
        found = re.search(r"(http://127\.0\.0\.1:\d+)/lab", line)
        if found:
            lab = JupyterLab(found.group(1), token, notebooks, gradebook, log)
            threading.Thread(target=_keep_log, args=(lines, log), daemon=True).start()
            return lab


def _keep_log(lines: queue.Queue, log: list[str]) -> None:
    while (line := lines.get()) is not None:
        log.append(line)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's group (it shuts its kernels down), then check nothing it started lives.

    Kernels run in sessions of their own, so they are found as descendants before stopping,
    killed if they outlive the server, and reported as a failure.
    """
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _, alive = psutil.wait_procs(descendants, timeout=STOP_TIMEOUT_S)
    for leftover in alive:
        leftover.kill()
    try:
        os.killpg(proc.pid, 0)
        leftover_group = True
    except ProcessLookupError:
        leftover_group = False
    assert not leftover_group, "JupyterLab's process group outlived SIGTERM"
    assert not alive, f"processes JupyterLab started outlived it (now killed): {[p.pid for p in alive]}"


@contextmanager
def chromium_page(chromium: str, profile: Path):
    """A page in a fresh headless chromium profile; the browser is closed and checked gone after."""
    from playwright.sync_api import sync_playwright

    before = {p.pid for p in psutil.Process().children()}
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        # playwright's driver is our new child and chromium runs under it; kernels started
        # meanwhile belong to JupyterLab and are checked when it stops.
        started = [p for p in psutil.Process().children() if p.pid not in before]
        started += [child for p in started for child in p.children(recursive=True)]
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
    _, alive = psutil.wait_procs(started, timeout=STOP_TIMEOUT_S)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"browser processes outlived the browser: {[p.pid for p in alive]}"

"""JupyterLab and headless chromium for tests/test_browser.py, both stopped when the test ends.

`jupyter_lab(notebooks, home)` serves a directory from this interpreter's environment the way
a learner's `make lab` does, but isolated: its own Jupyter config, data, runtime and IPython
dirs (no user settings, workspaces or startup files leak in), SERVELAB_QUICK=1 and a private
gradebook in the environment the kernels inherit, a port chosen by the OS. It boots while the
browser starts. `chromium_page()` is
Debian's chromium driven by playwright through `executable_path`; playwright never downloads
a browser here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


class JupyterLab:
    """A JupyterLab being started: its token, the gradebook its kernels write, its log.

    It boots while the browser starts. `url()` waits for the server's log line naming its
    address, then for the port to accept: Jupyter Server logs the address before its event
    loop binds the socket. It fails with the log if the server exits or takes too long.
    """

    def __init__(self, output, token: str, gradebook: Path):
        self.token, self.gradebook = token, gradebook
        self.log: list[str] = []
        self._url: str | None = None
        self._listening = False
        self._settled = threading.Event()  # address logged, or exited before it was
        self._exited = threading.Event()
        threading.Thread(target=self._follow, args=(output,), daemon=True).start()

    def _follow(self, output) -> None:
        for line in output:
            self.log.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/lab", line)
            if found and not self._settled.is_set():
                self._url = found.group(1)
                self._settled.set()
        self._exited.set()
        self._settled.set()

    def url(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        if not self._settled.wait(START_TIMEOUT_S):
            raise AssertionError(f"JupyterLab did not start within {START_TIMEOUT_S} s:\n{self.log_tail()}")
        while not self._listening:
            self._listening = self._url is not None and _accepts(self._url)
            if not self._listening and self._exited.is_set():
                raise AssertionError(f"JupyterLab exited before serving:\n{self.log_tail()}")
            if not self._listening and time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab did not listen within {START_TIMEOUT_S} s:\n{self.log_tail()}")
        return self._url

    def notebook_url(self, name: str) -> str:
        return f"{self.url()}/lab/tree/{name}?token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.log[-lines:])


def _accepts(url: str) -> bool:
    """True if something accepts connections at `url`'s port; a refusal costs a short pause."""
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        time.sleep(0.05)
        return False


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


@contextmanager
def jupyter_lab(notebooks: Path, home: Path) -> Iterator[JupyterLab]:
    """Start JupyterLab on `notebooks` (state kept under `home`); stop it and its kernels after."""
    token = "servelab-browser-test"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", "--port=0",
               f"--ServerApp.root_dir={notebooks}"]
    if os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it
    proc = subprocess.Popen(command, cwd=notebooks, env=_isolated_env(home, token), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield JupyterLab(proc.stdout, token, _gradebook(home))
    finally:
        _stop(proc)


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
        os.killpg(proc.pid, signal.SIGKILL)
        group_outlived = True
    except ProcessLookupError:
        group_outlived = False
    assert not group_outlived, "processes of JupyterLab's group outlived it (now killed)"
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
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            # Our new child is playwright's driver, with chromium and its renderers under it.
            # (Kernels belong to JupyterLab, an older child, and are checked when it stops.)
            started = [p for p in psutil.Process().children() if p.pid not in before]
            started += [child for p in started for child in p.children(recursive=True)]
            context.close()
    _, alive = psutil.wait_procs(started, timeout=STOP_TIMEOUT_S)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"browser processes outlived the browser: {[p.pid for p in alive]}"

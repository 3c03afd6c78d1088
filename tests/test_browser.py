"""A learner's path through lab 00 in JupyterLab, in a real headless browser.

Open the lab 00 solution in JupyterLab, Run > Run All Cells, wait for the kernel to go idle,
check every cell ran, nothing rendered a traceback and the plot was drawn, then answer a quiz
question in its widgets: a wrong option first ("Not quite."), then the right one ("Correct."
and the worked solution). The solution is opened, not the student lab, because a student lab
stops at its first exercise (NotImplementedError) by design. Debian's chromium is driven by
playwright through `executable_path`; no browser is downloaded. A screenshot of the page is
saved in the test's tmp_path when a step fails.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from browser_fixtures import chromium_page, jupyter_lab
from tools import require_tool

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "00-orientation.ipynb"
QUIZ = "00-orientation"
KERNEL_IDLE = re.compile(r"\| Idle$")  # the status bar's "Python 3 (ipykernel) | Idle"
RUN_TIMEOUT_MS = 75_000
# True once Run All has finished: no cell is queued or running ("[*]:") and the first code
# cell has an execution count. After an error JupyterLab clears the queue, leaving "[ ]:".
RUN_FINISHED_JS = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
    return prompts.length > 0 && !prompts.some(p => p.includes('*')) && /\\d/.test(prompts[0]);
}"""


def _clear_outputs(path: Path) -> None:
    """Solutions are saved executed; clear them so every output checked comes from this run."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, path)


@pytest.fixture
def chromium() -> str:
    return require_tool("chromium")


@pytest.fixture
def lab(tmp_path):
    notebooks = tmp_path / "solutions"
    shutil.copytree(ROOT / "solutions", notebooks)
    assert (notebooks / NOTEBOOK).exists(), f"solutions/{NOTEBOOK} is missing; the browser test opens it"
    _clear_outputs(notebooks / NOTEBOOK)
    with jupyter_lab(notebooks, tmp_path / "home") as running:
        yield running


@pytest.fixture
def page(chromium, lab, tmp_path):
    with chromium_page(chromium, tmp_path / "chromium-profile") as opened:
        yield opened


@contextmanager
def screenshot_on_failure(page, lab, path: Path):
    """On any failure save what the page showed and add it, with the server's log, to the error."""
    try:
        yield
    except Exception as error:
        try:
            page.screenshot(path=path)
            saved = f"screenshot: {path}"
        except Exception as screenshot_error:  # a crashed browser must not hide the first error
            saved = f"no screenshot: {screenshot_error}"
        raise AssertionError(f"{error}\n{saved}\nJupyterLab log (tail):\n{lab.log_tail()}") from error


def run_all_cells(page) -> None:
    """Run > Run All Cells once the kernel is idle, and wait until the run has finished."""
    status_bar = page.locator("#jp-main-statusbar")
    status_bar.get_by_text(KERNEL_IDLE).wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    page.wait_for_function(RUN_FINISHED_JS, timeout=RUN_TIMEOUT_MS)
    status_bar.get_by_text(KERNEL_IDLE).wait_for(timeout=RUN_TIMEOUT_MS)


def assert_ran_without_errors(page) -> None:
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
    not_run = [n for n, prompt in enumerate(prompts, start=1) if not re.search(r"\d", prompt)]
    assert not not_run, f"code cells {not_run} did not run (prompts {prompts}); an earlier cell failed"
    outputs = page.locator(".jp-OutputArea-output").all_text_contents()
    assert outputs, "no cell rendered any output"
    tracebacks = [text for text in outputs if "Traceback (most recent call last)" in text]
    assert not tracebacks, "a cell rendered an error:\n" + "\n".join(tracebacks)


def test_lab_00_runs_and_its_quiz_answers_in_jupyterlab(page, lab, tmp_path):
    from servelab.quiz import bank

    question = next(q for q in bank.load(QUIZ).questions if q.kind == "single")
    right = question.letters.index(question.answer)
    wrong = (right + 1) % len(question.options)
    label = {n: f"{question.letters[n]}. {question.options[n]}" for n in (right, wrong)}

    with screenshot_on_failure(page, lab, tmp_path / "jupyterlab.png"):
        page.goto(lab.notebook_url(NOTEBOOK))
        run_all_cells(page)
        assert_ran_without_errors(page)
        outputs = "\n".join(page.locator(".jp-OutputArea-output").all_text_contents())
        assert "mode: quick" in outputs, "the kernel did not inherit SERVELAB_QUICK=1 from JupyterLab"
        assert page.locator(".jp-OutputArea-output img").count() > 0, "no plot was drawn"
        assert lab.gradebook.exists(), "the lab's quiz.submit cell recorded nothing in $SERVELAB_GRADEBOOK"

        block = page.locator(".widget-vbox", has=page.get_by_role("radio", name=label[right], exact=True)).last
        check = block.get_by_role("button", name="Check", exact=True)
        block.get_by_role("radio", name=label[wrong], exact=True).check()
        check.click()
        block.get_by_text("Not quite.").wait_for()
        block.get_by_role("radio", name=label[right], exact=True).check()
        check.click()
        block.get_by_text("Correct.").wait_for()
        feedback = block.locator("pre").text_content()
        assert "Not quite." not in feedback and "Worked solution:" in feedback
        assert question.steps[0][:40] in feedback

"""labgen: solution blocks become exercise stubs, run leftovers go, and labs/ never drifts."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from servelab import labgen

ROOT = Path(__file__).resolve().parents[1]


def solved_notebook() -> nbformat.NotebookNode:
    """A three-cell solution notebook as a run leaves it: outputs, counts, editor metadata."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"},
        "widgets": {"state": {}},
    }
    intro = nbformat.v4.new_markdown_cell("# A lab\nWhat is 6 x 7?")
    answer = nbformat.v4.new_code_cell(
        "x = 6\n### BEGIN SOLUTION\nanswer = x * 7\n### END SOLUTION\nprint(answer)",
        execution_count=3,
        outputs=[nbformat.v4.new_output("stream", name="stdout", text="42\n")],
        metadata={"tags": ["nbval-check-output"], "execution": {"iopub.status.busy": "2026-11-28"}, "scrolled": True},
    )
    nested = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION")
    nb.cells = [intro, answer, nested]
    return nb


HEAD = "# YOUR CODE HERE: replace each ..., then delete the raise"


def test_solution_block_becomes_stub_that_raises():
    source = "x = 6\n### BEGIN SOLUTION\nanswer = x * 7\n### END SOLUTION\nprint(answer)"
    stripped = labgen.strip_solutions(source)
    assert stripped == f"x = 6\n{HEAD}\nanswer = ...\nraise NotImplementedError()\nprint(answer)"
    with pytest.raises(NotImplementedError):
        exec(stripped, {})


def test_stub_keeps_the_indent_of_its_marker():
    source = "def f():\n    ### BEGIN SOLUTION\n    result = 42\n    ### END SOLUTION\n    return result"
    stripped = labgen.strip_solutions(source)
    assert stripped == f"def f():\n    {HEAD}\n    result = ...\n    raise NotImplementedError()\n    return result"
    namespace: dict = {}
    exec(stripped, namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"]()


def test_stub_keeps_only_the_names_read_after_it_with_their_types():
    source = (
        "### BEGIN SOLUTION\n"
        "meets = table[table.p95 <= 50]  # a step of the solution: nobody reads it later\n"
        "best: float | None = float(meets.index.max()) if len(meets) else None\n"
        "low, high = 1, 2\n"
        "### END SOLUTION\n"
        "# best and high are read; meets only in this comment\n"
        'print(f"{best} {high}")'
    )
    assert labgen.strip_solutions(source).splitlines()[:4] == [
        HEAD, "best: float | None = ...", "high = ...", "raise NotImplementedError()"]


def test_a_name_only_a_later_cell_reads_gets_its_placeholder():
    nb = solved_notebook()
    nb.cells[1].source = "### BEGIN SOLUTION\nanswer = 6 * 7\nscratch = 1\n### END SOLUTION"
    nb.cells[2].source = "print(answer)"
    assert labgen.make_lab(nb).cells[1].source == f"{HEAD}\nanswer = ...\nraise NotImplementedError()"


def test_a_block_that_is_not_python_is_refused():
    with pytest.raises(ValueError, match="lab.ipynb cell 2: the solution block is not valid Python"):
        labgen.strip_solutions("### BEGIN SOLUTION\nanswer = (\n### END SOLUTION", "lab.ipynb cell 2")


@pytest.mark.parametrize("path", sorted((ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_committed_stub_has_a_placeholder_and_stops(path: Path):
    """A learner sees which names to set; an unfinished exercise still stops the notebook."""
    stubs = [c.source for c in nbformat.read(path, as_version=4).cells if HEAD in c.source]
    assert stubs, f"{path.name} has no exercise"
    for source in stubs:
        after_head = source.split(HEAD, 1)[1].splitlines()[1:]
        placeholders = [line for line in after_head if line.rstrip().endswith("= ...")]
        assert placeholders, f"{path.name}: a stub with no placeholder"
        assert after_head[len(placeholders)].strip() == "raise NotImplementedError()", path.name


def test_hidden_block_is_left_out():
    source = 'answers = None\n### BEGIN HIDDEN TESTS\nanswers = {"q1": "C"}\n### END HIDDEN TESTS\nsubmit(answers)'
    assert labgen.strip_solutions(source) == "answers = None\nsubmit(answers)"


@pytest.mark.parametrize(
    "source, complaint",
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without its"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
        ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS", "inside another"),
        ("### BEGIN HIDDEN TESTS\nx = 1\n### END SOLUTION", "without its"),
    ],
)
def test_unbalanced_markers_are_refused(source, complaint):
    with pytest.raises(ValueError, match=complaint):
        labgen.strip_solutions(source, "lab.ipynb cell 2")


def test_lab_has_no_outputs_counts_or_editor_metadata():
    lab = labgen.make_lab(solved_notebook())
    code = lab.cells[1]
    assert code.outputs == [] and code.execution_count is None
    assert code.metadata == {"tags": ["nbval-check-output"]}
    assert "answer = x * 7" not in code.source
    assert lab.cells[0].source == "# A lab\nWhat is 6 x 7?"
    assert lab.metadata == {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(lab)


def test_solution_notebook_is_left_unchanged():
    solution = solved_notebook()
    before = nbformat.writes(solution)
    labgen.make_lab(solution)
    assert nbformat.writes(solution) == before


def test_markers_in_markdown_are_refused():
    nb = solved_notebook()
    nb.cells[0].source = "### BEGIN SOLUTION\n42\n### END SOLUTION"
    with pytest.raises(ValueError, match="code cells only"):
        labgen.make_lab(nb, "lab.ipynb")


def test_write_is_deterministic_and_removes_stale_labs(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    nbformat.write(solved_notebook(), solutions / "00-a.ipynb")
    labs.mkdir()
    (labs / "99-gone.ipynb").write_text("{}")
    labgen.main([str(solutions), str(labs)])
    first = (labs / "00-a.ipynb").read_bytes()
    labgen.main([str(solutions), str(labs)])
    assert (labs / "00-a.ipynb").read_bytes() == first
    assert sorted(p.name for p in labs.iterdir()) == ["00-a.ipynb"]


def test_committed_labs_are_what_make_labs_writes():
    wanted = labgen.generate(ROOT / "solutions")
    committed = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "labs").glob("*.ipynb")}
    assert sorted(committed) == sorted(wanted), "labs/ and solutions/ hold different notebooks: run `make labs`"
    for name, text in wanted.items():
        assert committed[name] == text, f"labs/{name} is out of date with solutions/{name}: run `make labs`"


def _printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_solution_shows_every_finding_it_states(path: Path):
    """The reference run agrees with the text beside it: every finding it printed holds, none is missing."""
    notebook = nbformat.read(path, as_version=4)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        printed = _printed(cell)
        for refused in ("did NOT show", "cannot show"):
            assert refused not in printed, f"{path.name} cell {i}: the saved run printed '{refused}': re-run the lab"
        if "lab.finding(" in cell.source or "lab.report(" in cell.source:
            assert "This run shows it" in printed, f"{path.name} cell {i} states a finding; its saved output shows none"


@pytest.mark.parametrize("path", sorted((ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_learner_text_speaks_of_the_lesson_not_a_seed(path: Path):
    """Learners never saw 'the seed' this workbook grew from: the text calls it the lesson."""
    import re

    notebook = nbformat.read(path, as_version=4)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            assert not re.search(r"\bthe seed\b|\bseed's\b", cell.source, re.IGNORECASE), f"{path.name} cell {i}"


@pytest.mark.parametrize("path", sorted((ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_learner_text_never_says_seed_nor_quotes_the_reference_run(path: Path):
    """'seed' means nothing to a learner in any sense; and a lab's text cannot know the learner's numbers.

    The reference run's figures belong to its saved outputs: prose that quotes them goes stale on the next
    run and is wrong on every other machine, so the text says what to look for, or leans on a finding.
    """
    import re

    notebook = nbformat.read(path, as_version=4)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            assert not re.search(r"\bseed", cell.source, re.IGNORECASE), f"{path.name} cell {i}"
            assert "saved with this notebook" not in cell.source, f"{path.name} cell {i}"

"""Turn the solution notebooks into the student labs: `python -m servelab.labgen solutions labs`.

`solutions/` is the only notebook anyone edits. Code between nbgrader's markers
`### BEGIN SOLUTION` and `### END SOLUTION` becomes an exercise stub that raises
NotImplementedError; code between `### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS` (the
solution's own quiz answers) is left out. Everything a run leaves behind (outputs, execution
counts, editor metadata) is dropped, so a lab opens clean and `make labs` writes the same bytes
every time.
A test regenerates the labs and compares, so `labs/` cannot drift from `solutions/`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

# nbgrader's markers: a solution block becomes a stub; a hidden block (instructor-only code, such
# as the answers a solution notebook submits to its own quiz) is left out of the lab entirely.
BLOCKS = {
    "### BEGIN SOLUTION": ("### END SOLUTION", ("# YOUR CODE HERE", "raise NotImplementedError()")),
    "### BEGIN HIDDEN TESTS": ("### END HIDDEN TESTS", ()),
}
MARKERS = tuple(BLOCKS) + tuple(end for end, _ in BLOCKS.values())

# Cell metadata a lab keeps: tags carry meaning (nbval checks); the rest is editor state.
KEPT_CELL_METADATA = ("tags",)


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each solution block in `source` with the exercise stub (at the marker's indent)
    and drop each hidden block."""
    out: list[str] = []
    open_marker: str | None = None
    for line in source.splitlines():
        marker = line.strip()
        if marker in BLOCKS:
            if open_marker:
                raise ValueError(f"{where}: '{marker}' inside another block; close '{open_marker}' first")
            open_marker = marker
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub for stub in BLOCKS[marker][1])
        elif marker in MARKERS:
            if open_marker is None or marker != BLOCKS[open_marker][0]:
                raise ValueError(f"{where}: '{marker}' without its '### BEGIN' marker before it")
            open_marker = None
        elif open_marker is None:
            out.append(line)
    if open_marker:
        raise ValueError(f"{where}: '{open_marker}' is never closed; add '{BLOCKS[open_marker][0]}' after it")
    return "\n".join(out)


def make_lab(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of one solution notebook (the input is not changed)."""
    lab = nbformat.v4.new_notebook()
    lab.metadata = _notebook_metadata(solution.metadata)
    for index, cell in enumerate(solution.cells):
        where = f"{name} cell {index}"
        new = copy.deepcopy(cell)
        if cell.cell_type == "code":
            new.source = strip_solutions(cell.source, where)
            new.outputs = []
            new.execution_count = None
        elif any(marker in cell.source for marker in MARKERS):
            raise ValueError(f"{where}: solution markers belong in code cells only")
        new.metadata = {k: cell.metadata[k] for k in KEPT_CELL_METADATA if k in cell.metadata}
        lab.cells.append(new)
    lab.nbformat, lab.nbformat_minor = solution.nbformat, solution.nbformat_minor
    return lab


def _notebook_metadata(metadata: dict) -> dict:
    """Keep what Jupyter needs to pick the kernel; drop versions that change with every run."""
    kept = {}
    if "kernelspec" in metadata:
        kept["kernelspec"] = dict(metadata["kernelspec"])
    if "language_info" in metadata:
        kept["language_info"] = {"name": metadata["language_info"].get("name", "python")}
    return kept


def render(notebook: nbformat.NotebookNode) -> str:
    """The exact text written for a notebook: nbformat's JSON plus a final newline."""
    return nbformat.writes(notebook) + "\n"


def generate(solutions_dir: Path) -> dict[str, str]:
    """Return {file name: lab text} for every solution notebook, without writing anything."""
    paths = sorted(Path(solutions_dir).glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no notebooks in {solutions_dir}; run from the repository root")
    return {p.name: render(make_lab(nbformat.read(p, as_version=4), p.name)) for p in paths}


def write(solutions_dir: Path, labs_dir: Path) -> list[Path]:
    """Write the labs, remove labs that no longer have a solution, and return what was written."""
    labs_dir = Path(labs_dir)
    labs_dir.mkdir(parents=True, exist_ok=True)
    wanted = generate(solutions_dir)
    for stale in labs_dir.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, text in wanted.items():
        path = labs_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servelab.labgen", description=__doc__.splitlines()[0])
    parser.add_argument("solutions", type=Path, help="folder of solution notebooks (the source)")
    parser.add_argument("labs", type=Path, help="folder to write the student labs into")
    args = parser.parse_args(argv)
    for path in write(args.solutions, args.labs):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

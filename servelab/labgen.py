"""Turn the solution notebooks into the student labs: `python -m servelab.labgen solutions labs`.

`solutions/` is the only notebook anyone edits. Code between nbgrader's markers
`### BEGIN SOLUTION` and `### END SOLUTION` becomes an exercise stub: a `name = ...` placeholder for
each name the solution assigns and the code after it reads (with the solution's annotation, so the
stub says what type it expects), then `raise NotImplementedError()`, so an unfinished exercise stops
the notebook where it is; code between `### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS` (the
solution's own quiz answers) is left out. Everything a run leaves behind (outputs, execution
counts, editor metadata) is dropped, so a lab opens clean and `make labs` writes the same bytes
every time.
A test regenerates the labs and compares, so `labs/` cannot drift from `solutions/`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import re
import sys
import textwrap
import tokenize
from pathlib import Path

import nbformat

# nbgrader's markers: a solution block becomes a stub; a hidden block (instructor-only code, such
# as the answers a solution notebook submits to its own quiz) is left out of the lab entirely.
BLOCKS = {
    "### BEGIN SOLUTION": ("### END SOLUTION", True),
    "### BEGIN HIDDEN TESTS": ("### END HIDDEN TESTS", False),
}
STUB_HEAD = "# YOUR CODE HERE: replace each ..., then delete the raise"
STUB_RAISE = "raise NotImplementedError()"
MARKERS = tuple(BLOCKS) + tuple(end for end, _ in BLOCKS.values())

# Cell metadata a lab keeps: tags carry meaning (nbval checks); the rest is editor state.
KEPT_CELL_METADATA = ("tags",)


def strip_solutions(source: str, where: str = "cell", later: str = "") -> str:
    """Replace each solution block in `source` with the exercise stub (at the marker's indent)
    and drop each hidden block. `later` is the code of the cells after this one: a name the block
    assigns gets a placeholder if the rest of this cell or `later` reads it."""
    out: list[str] = []
    lines = source.splitlines()
    open_marker: str | None = None
    block: list[str] = []
    indent = ""
    for number, line in enumerate(lines):
        marker = line.strip()
        if marker in BLOCKS:
            if open_marker:
                raise ValueError(f"{where}: '{marker}' inside another block; close '{open_marker}' first")
            open_marker, block = marker, []
            indent = line[: len(line) - len(line.lstrip())]
        elif marker in MARKERS:
            if open_marker is None or marker != BLOCKS[open_marker][0]:
                raise ValueError(f"{where}: '{marker}' without its '### BEGIN' marker before it")
            if BLOCKS[open_marker][1]:
                after = "\n".join(lines[number + 1 :]) + "\n" + later
                out.extend(indent + stub for stub in _stub(block, after, where))
            open_marker = None
        elif open_marker is None:
            out.append(line)
        else:
            block.append(line)
    if open_marker:
        raise ValueError(f"{where}: '{open_marker}' is never closed; add '{BLOCKS[open_marker][0]}' after it")
    return "\n".join(out)


def _stub(block: list[str], after: str, where: str) -> list[str]:
    """The lines that stand in for a solution block: its placeholders, then the raise.

    A placeholder keeps what the code after the block relies on (the name, and the type the
    solution annotated it with) and leaves out how the solution computed it."""
    code = textwrap.dedent("\n".join(block))
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        raise ValueError(f"{where}: the solution block is not valid Python ({error.msg}, line {error.lineno})") from None
    placeholders: dict[str, str] = {}
    assignments = [node for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))]
    for node in sorted(assignments, key=lambda node: (node.lineno, node.col_offset)):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = ast.get_source_segment(code, node.annotation)
            placeholders[node.target.id] = f"{node.target.id}: {annotation} = ..."
        for target in node.targets if isinstance(node, ast.Assign) else ():
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                    placeholders.setdefault(name.id, f"{name.id} = ...")
    read = _names_read(after)
    return [STUB_HEAD, *(line for name, line in placeholders.items() if name in read), STUB_RAISE]


def _names_read(code: str) -> set[str]:
    """The names `code` mentions outside comments (inside strings too, since f-strings read names).

    A notebook's magics can make code untokenizable; then every word counts, which at worst adds
    a placeholder."""
    words = re.compile(r"[A-Za-z_]\w*")
    try:
        names: set[str] = set()
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.NAME:
                names.add(token.string)
            elif token.type == tokenize.STRING:
                names.update(words.findall(token.string))
        return names
    except (tokenize.TokenError, SyntaxError):
        return set(words.findall(code))


def make_lab(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """Return the student version of one solution notebook (the input is not changed)."""
    lab = nbformat.v4.new_notebook()
    lab.metadata = _notebook_metadata(solution.metadata)
    code = [cell.source if cell.cell_type == "code" else "" for cell in solution.cells]
    for index, cell in enumerate(solution.cells):
        where = f"{name} cell {index}"
        new = copy.deepcopy(cell)
        if cell.cell_type == "code":
            new.source = strip_solutions(cell.source, where, "\n".join(code[index + 1 :]))
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

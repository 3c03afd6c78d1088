"""Progress bars for long cells, and the line they leave behind in a saved notebook.

A notebook saves a tqdm widget as it first drew it (an empty bar at 0 %), not as it ended, so a
saved long cell would look unfinished. `finish` closes a bar and, when the bar is a notebook
widget, prints where it ended as plain text, which the saved notebook keeps. In a terminal the
bar's last frame stays on screen and says the same.
"""

from __future__ import annotations

from typing import Any


def bar(show: bool, **options: Any) -> Any:
    """A `tqdm.auto` bar (a widget in a notebook, text in a terminal) with `options`; disabled, so
    that its calls cost nothing and draw nothing, when not `show`."""
    from tqdm.auto import tqdm

    return tqdm(disable=not show, **options)


def finish(shown: Any, line: str) -> None:
    """Close the bar; if it was drawn as a notebook widget, also print `line` (what the run did),
    the text a saved notebook shows where the widget's first frame would say 0 %."""
    drawn_in_notebook = not shown.disable and type(shown).__module__ == "tqdm.notebook"
    shown.close()  # which disables it
    if drawn_in_notebook:
        print(line)

"""Analysis output as a terminal shows it, and the progress it reports (pure).

tqdm and friends redraw one line with carriage returns: a terminal shows its latest state, a
naive reader shows hundreds of fragments. ``LineRenderer`` applies what a terminal applies:
LF (or CRLF) ends a line, a bare CR moves back to the line's start so that what follows
overwrites it, backspace steps back one column, and escape sequences (colours, cursor moves)
are dropped. ``progress`` reads tqdm's ``45%|####5     | 45/100`` or a plain ``NN%``.
"""

from __future__ import annotations

import re

# A line longer than this is cut: a log without newlines must not grow the renderer's memory.
MAX_LINE = 4096
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\r\n]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]")
_TOKENS = re.compile(r"(\r\n|\n|\r|\x08)")
# tqdm: "label:  45%|####5     | 45/100 [00:01<00:02, 30.0it/s]" (n/total beats the rounded %).
_TQDM = re.compile(r"(\d{1,3})%\|[^|]*\|\s*(\d+(?:\.\d+)?)[a-zA-Z]*/(\d+(?:\.\d+)?)")
_PERCENT = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)\s?%")


class LineRenderer:
    """Feed text as it arrives (any chunking); get back the lines it completed."""

    def __init__(self) -> None:
        self._line: list[str] = []
        self._col = 0
        self._escape = ""  # an escape sequence cut by a chunk boundary
        self.last = ""  # the latest non-empty completed line

    @property
    def current(self) -> str:
        """The line being written (what the terminal shows on its last row)."""
        return "".join(self._line).rstrip()

    @property
    def latest(self) -> str:
        """The latest non-empty line: the one being written, else the last completed one."""
        return self.current.strip() or self.last.strip()

    def feed(self, text: str) -> list[str]:
        text = self._escape + text
        self._escape = ""
        cut = text.rfind("\x1b")
        if cut >= 0 and cut > len(text) - 64 and not _ESCAPE.match(text, cut):
            text, self._escape = text[:cut], text[cut:]  # maybe complete in the next chunk
        text = _CONTROL.sub("", _ESCAPE.sub("", text))
        done: list[str] = []
        for token in _TOKENS.split(text):
            if token in ("\n", "\r\n"):
                line = "".join(self._line).rstrip()
                done.append(line)
                if line.strip():
                    self.last = line
                self._line, self._col = [], 0
            elif token == "\r":
                self._col = 0
            elif token == "\x08":
                self._col = max(0, self._col - 1)
            elif token:
                self._write(token)
        return done

    def close(self) -> list[str]:
        """The end of the output: a last line without a newline still counts."""
        line = self.current
        self._line, self._col, self._escape = [], 0, ""
        if line.strip():
            self.last = line
            return [line]
        return []

    def _write(self, text: str) -> None:
        end = self._col + len(text)
        if end > MAX_LINE:
            text = text[: max(0, MAX_LINE - self._col)]
            end = self._col + len(text)
        if self._col > len(self._line):
            self._line.extend(" " * (self._col - len(self._line)))
        self._line[self._col : end] = list(text)
        self._col = end


def render_lines(text: str) -> list[str]:
    """The whole ``text`` as a terminal leaves it: one entry per line, in order."""
    renderer = LineRenderer()
    return renderer.feed(text) + renderer.close()


def render_text(text: str) -> str:
    return "\n".join(render_lines(text))


def progress(line: str) -> float | None:
    """The fraction done that ``line`` shows (tqdm's bar, or a plain ``NN%``), else None."""
    found = _TQDM.search(line)
    if found:
        done, total = float(found.group(2)), float(found.group(3))
        if total > 0 and done <= total:
            return round(done / total, 4)
        return _fraction(found.group(1))
    plain = _PERCENT.findall(line)
    return _fraction(plain[-1]) if plain else None


def _fraction(percent: str) -> float | None:
    value = float(percent)
    return round(value / 100, 4) if 0 <= value <= 100 else None

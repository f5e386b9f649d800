"""logtext: CR-rewritten lines rendered as a terminal shows them, and the progress they show."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncaas_dev.logtext import MAX_LINE, LineRenderer, progress, render_lines, render_text

FUZZ = settings(max_examples=300, deadline=None, database=None)


def tqdm_bar(n: int, total: int = 100) -> str:
    pct = n * 100 // total
    filled = "#" * (n * 10 // total)
    return f"\r{pct:3d}%|{filled:<10}| {n}/{total} [00:01<00:02, 30.0it/s]"


def test_cr_rewrites_keep_the_latest_state_of_the_line() -> None:
    text = "start\n" + "".join(tqdm_bar(n) for n in range(0, 101, 5)) + "\ndone\n"
    assert render_lines(text) == [
        "start",
        "100%|##########| 100/100 [00:01<00:02, 30.0it/s]",
        "done",
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lf_and_crlf_both_end_a_line(newline: str) -> None:
    assert render_lines(f"a{newline}b{newline}{newline}c") == ["a", "b", "", "c"]


def test_a_shorter_rewrite_overwrites_like_a_terminal() -> None:
    # A terminal keeps the old line's tail: tqdm pads with spaces for exactly this reason.
    assert render_text("abcdef\rxy\n") == "xycdef"
    assert render_text("abcdef\rxy    \n") == "xy"


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    renderer = LineRenderer()
    assert renderer.feed("one\r") == []
    assert renderer.feed("\ntwo") == ["one"]
    assert renderer.current == "two"
    assert renderer.close() == ["two"]


def test_escapes_and_controls_are_dropped_even_when_cut_by_chunks() -> None:
    renderer = LineRenderer()
    done = renderer.feed("\x1b[32mgreen\x1b[")
    done += renderer.feed("0m text\x07\x1b[A\n")
    assert done == ["green text"]


def test_backspace_steps_back_one_column() -> None:
    assert render_text("abc\x08\x08X\n") == "aXc"


def test_latest_is_the_bar_being_drawn_else_the_last_line() -> None:
    renderer = LineRenderer()
    renderer.feed("loading\n" + tqdm_bar(30) + tqdm_bar(40))
    assert renderer.latest.startswith("40%|####")
    renderer.feed("\n\n")
    assert renderer.latest.startswith("40%|####")


def test_a_line_without_newlines_stays_bounded() -> None:
    renderer = LineRenderer()
    for _ in range(100):
        renderer.feed("x" * 1000)
    assert len(renderer.current) == MAX_LINE


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  45%|####5     | 45/100 [00:01<00:02, 30.0it/s]", 0.45),
        ("train:  33%|###3      | 1/3 [00:01<00:02,  1.00s/it]", 0.3333),
        ("100%|##########| 8/8 [00:00<00:00]", 1.0),
        ("  7%|6         | 7.00M/100M [00:01<00:09, 9.8MB/s]", 0.07),
        ("epoch 2: 45% done", 0.45),
        ("GPU at 80%, done 12.5 %", 0.125),
        ("45it [00:01, 30.0it/s]", None),  # tqdm without a total
        ("no progress here", None),
        ("the 250% rule", None),
        ("version1.50%", None),
        ("", None),
    ],
)
def test_progress(line: str, expected: float | None) -> None:
    assert progress(line) == expected


chunks = st.lists(
    st.text(st.sampled_from(list("ab \r\n\x08\x1b[m%|0123456789/")), max_size=20), max_size=20
)


@FUZZ
@given(chunks)
def test_any_chunking_renders_like_the_whole(parts: list[str]) -> None:
    renderer = LineRenderer()
    lines = [line for part in parts for line in renderer.feed(part)] + renderer.close()
    assert lines == render_lines("".join(parts))


@FUZZ
@given(st.text(max_size=200))
def test_rendered_lines_hold_no_line_breaks_and_progress_is_a_fraction(text: str) -> None:
    for line in render_lines(text):
        assert "\r" not in line and "\n" not in line
        found = progress(line)
        assert found is None or 0.0 <= found <= 1.0

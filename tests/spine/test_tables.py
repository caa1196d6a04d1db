"""One Markdown table writer: its output, written out by hand, and no second writer in src/."""

from pathlib import Path

from aaexp.core import tables

SRC = Path(__file__).resolve().parents[2] / "src" / "aaexp"


def test_markdown_table_with_right_aligned_columns():
    text = tables.markdown(["band", "tones", "model"], [["20-500", 7, "teacher"], ["500-2k", "", "student"]], right=(1,))
    assert text == ("| band | tones | model |\n"
                    "|---|---:|---|\n"
                    "| 20-500 | 7 | teacher |\n"
                    "| 500-2k |  | student |")


def test_a_table_without_rows_is_its_header():
    assert tables.markdown(["a", "b"], []) == "| a | b |\n|---|---|"


def test_no_other_module_writes_a_table_rule():
    writers = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if "---|" in p.read_text()]
    assert writers == ["core/tables.py"]

"""`make bench` gathers every module's goal lines into one Goals table at the top of the report."""

from __future__ import annotations

import pytest

from scripts.bench.__main__ import goals_table, split_goals
from scripts.bench.foundation import report_goal


def test_goal_lines_leave_the_section_and_keep_their_order(capsys: pytest.CaptureFixture[str]) -> None:
    print("| a | b |")
    report_goal("cold start: search", "<= 1.3x the floor", "1.12x", True)
    print("| 1 | 2 |")
    report_goal("largest asset", "<= 100 MB", "113.3 MB (embedder)", False)
    text, goals = split_goals(capsys.readouterr().out)
    assert text == "| a | b |\n| 1 | 2 |"
    assert [goal["figure"] for goal in goals] == ["cold start: search", "largest asset"]
    assert [goal["met"] for goal in goals] == [True, False]


def test_goals_table_marks_what_is_not_met() -> None:
    table = goals_table(
        [
            ("Foundation", {"figure": "largest asset", "goal": "<= 100 MB", "measured": "113.3 MB", "met": False}),
            ("HTTP tunnel", {"figure": "detection", "goal": "<= 0.25x", "measured": "0.09x", "met": True}),
        ]
    )
    lines = table.splitlines()
    assert lines[0] == "| section | figure | goal | measured | met |"
    assert lines[2] == "| Foundation | largest asset | <= 100 MB | 113.3 MB | **no** |"
    assert lines[3] == "| HTTP tunnel | detection | <= 0.25x | 0.09x | yes |"


def test_asset_goals_name_the_largest_asset_per_budget_class(capsys: pytest.CaptureFixture[str]) -> None:
    from scripts.bench.foundation import _report_asset_goals

    _report_asset_goals(
        [
            ("qr-upload-http-api-dev", "qr_upload", 21.6),
            ("tunnel-forward-dev", "tunnel", 3.9),
            ("collections-dev-EmbedderLambda", "embedder", 113.3),
            ("no-asset", "search", float("nan")),
        ]
    )
    _, goals = split_goals(capsys.readouterr().out)
    assert [(goal["figure"], goal["measured"], goal["met"]) for goal in goals] == [
        ("largest request/response asset (unzipped)", "21.6 MB (qr-upload-http-api-dev)", True),
        ("largest asset (unzipped)", "113.3 MB (collections-dev-EmbedderLambda)", False),
    ]

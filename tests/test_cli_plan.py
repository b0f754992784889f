"""Tests of `m3ddm plan` through the CLI entry point."""

import json

import pytest

from m3ddm.cli import main


def test_plan_draws_the_schedule(capsys):
    assert main(["plan", "--frames", "100"]) == 0
    out = capsys.readouterr().out
    assert "strides 15,5,1" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("level ")] == [
        ["level", "1"], ["level", "2"], ["level", "3"],
    ]
    assert "0 15 30 45 60 75 90 99" in out  # level 1, no guides
    assert "90* 91 92 93 94 95* 96 97 98 99*" in out  # the last dense window


def test_plan_json_shape(capsys):
    assert main(["plan", "--frames", "300", "--strides", "30,15,1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["levels"] and len(data["levels"]) == 3
    for level in data["levels"]:
        for window in level:
            assert {"frames", "guides"} <= set(window)
            assert all(isinstance(f, int) for f in window["frames"])
            assert set(window["guides"]) <= set(window["frames"])
    windows = [w for level in data["levels"] for w in level]
    generated = sorted(f for w in windows for f in w["frames"] if f not in w["guides"])
    assert generated == list(range(300))
    assert data["levels"][0][0]["frames"] == [0, 30, 60, 90, 120, 150, 180, 210, 240, 270, 299]


def test_plan_dense_default_for_short_videos(capsys):
    assert main(["plan", "--frames", "20", "--json", "--window", "8"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = [list(range(0, 8)), list(range(7, 15)), list(range(14, 20))]
    assert [w["frames"] for w in data["levels"][0]] == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--frames", "0"],
        ["plan", "--frames", "-5"],
        ["plan", "--frames", "100", "--strides", "15,5"],
        ["plan", "--frames", "100", "--strides", "15,4,1"],
        ["plan", "--frames", "100", "--strides", "x"],
        ["plan", "--frames", "100", "--window", "1"],
    ],
)
def test_plan_user_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("m3ddm plan: error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_plan_requires_frames(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan"])
    assert exc.value.code == 2


def test_plan_json_gives_every_window_the_length_the_unet_sees(capsys):
    import json

    from m3ddm.cli import main

    assert main(["plan", "--frames", "100", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    lengths = [w["length"] for level in plan["levels"] for w in level]
    assert lengths and set(lengths) == {16}

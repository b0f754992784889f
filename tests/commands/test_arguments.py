"""Tests of reading user strings: ratios, target-ratio lists, pads, strides, times and output sizes."""

import argparse
from fractions import Fraction

import pytest

from m3ddm.commands.arguments import (
    parse_int_list,
    parse_pad,
    parse_ratio,
    parse_seconds,
    parse_size,
    parse_strides,
    parse_target_ratios,
)
from m3ddm.errors import UserError
from m3ddm.geometry import Pad, TargetRatio


@pytest.mark.parametrize(
    "text, expected",
    [("9:16", 9 / 16), ("16:9", 16 / 9), ("1:1", 1.0), ("2.39:1", 2.39), ("0.5625", 0.5625), ("4/3", 4 / 3),
     (" 21 : 9 ", 21 / 9)],
)
def test_parse_ratio(text, expected):
    assert parse_ratio(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "0", "0:9", "9:0", "-9:16", "1:2:3", "nan", "inf", "16:"])
def test_parse_ratio_rejects_nonsense(text):
    with pytest.raises(UserError):
        parse_ratio(text)


def test_parse_pad_fractions_and_pixels():
    assert parse_pad("0.25,0,0.25,0") == Pad(0.25, 0.0, 0.25, 0.0, "fraction")
    assert parse_pad("100, 0, 50, 8") == Pad(100, 0, 50, 8, "pixel")
    assert parse_pad("0.1,0.2,0.3,0.4").in_pixels(200, 1000) == pytest.approx((100, 40, 300, 80))


@pytest.mark.parametrize(
    "text",
    ["0.2,0,100,0", "0,0,0,0", "-0.1,0,0.1,0", "0.1,0.1,0.1", "a,b,c,d", "10.5,0,0,0", "0.1,0.1,0.1,0.1,0.1"],
)
def test_parse_pad_rejects_nonsense(text):
    with pytest.raises(UserError):
        parse_pad(text)


@pytest.mark.parametrize("text, expected", [("15,5,1", (15, 5, 1)), (" 30, 15 ,1", (30, 15, 1)), ("1", (1,)),
                                            ("225,15,1", (225, 15, 1))])
def test_parse_strides(text, expected):
    assert parse_strides(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "15,5", "5,15,1", "15,15,1", "15,4,1", "0,1", "-5,1", "5,1.5"])
def test_bad_strides_are_user_errors(text):
    with pytest.raises(UserError):
        parse_strides(text)


def test_parse_target_ratios_keeps_the_labels_for_file_names():
    assert parse_target_ratios("9:16, 1:1,2.39/1") == (
        TargetRatio("9-16", 9 / 16), TargetRatio("1-1", 1.0), TargetRatio("2.39-1", 2.39))
    with pytest.raises(UserError):
        parse_target_ratios("9:16,wide")


@pytest.mark.parametrize("text, expected", [("90", Fraction(90)), ("1.5", Fraction(3, 2)), ("01:30", Fraction(90)),
                                            ("1:00:00.25", Fraction(14401, 4)), (".5", Fraction(1, 2))])
def test_parse_seconds_is_exact(text, expected):
    assert parse_seconds(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1:2:3:4", "a", "1,5"])
def test_parse_seconds_rejects_nonsense(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seconds(text)


def test_parse_size():
    assert parse_size("720x1280") == (720, 1280)
    assert parse_size(" 720X1280 ") == (720, 1280)
    for bad in ("720", "axb", "720x1280x3", "0x10"):
        with pytest.raises(UserError, match="--output-size"):
            parse_size(bad)
    assert parse_size("320x240", "--source-size", minimum=8, even=True) == (320, 240)
    for bad in ("6x240", "65x48", "64x49"):  # (odd sides: H.264 yuv420p cannot hold them)
        with pytest.raises(UserError, match="--source-size"):
            parse_size(bad, "--source-size", minimum=8, even=True)


def test_parse_int_list():
    assert parse_int_list("100, 1000", "--frames") == [100, 1000]
    for bad in ("10,-1", "", "a"):
        with pytest.raises(UserError, match="--frames"):
            parse_int_list(bad, "--frames")

"""The app's handler functions, without a browser or gradio."""

from pathlib import Path

import numpy as np
import pytest

from m3ddm.app import handlers
from m3ddm.app.preview import OUTLINE_RGB, generated_bands, plan_preview
from m3ddm.errors import UserError
from m3ddm.geometry import Pad, Rect, plan_geometry
from m3ddm.io import probe_video
from media_checks import write_garbage


def test_target_from_form_ratio_and_pads():
    assert handlers.target_from_form("ratio", " 9:16 ") == handlers.Target(ratio=9 / 16)
    fractions = handlers.Target(pad=Pad(0.25, 0.0, 0.25, 0.0, "fraction"))
    assert handlers.target_from_form("pads", "9:16", 0.25, 0, 0.25, 0) == fractions
    assert handlers.target_from_form("pads", None, 16, 0, 32.0, 0) == handlers.Target(pad=Pad(16, 0, 32, 0, "pixel"))


@pytest.mark.parametrize(("mode", "ratio", "message"), [
    ("ratio", "", "choose a target aspect ratio"),
    ("ratio", "tall", "cannot read the aspect ratio 'tall'"),
    ("ratio", "-1:2", "the aspect ratio must be positive"),
    ("sideways", "9:16", "unknown target mode"),
])
def test_target_from_form_mistakes(mode, ratio, message):
    with pytest.raises(UserError, match=message):
        handlers.target_from_form(mode, ratio)


def test_settings_from_form_defaults_and_checks():
    s = handlers.settings_from_form(0, 0, None, None, None, 7, 0, 0)
    assert s == handlers.Settings(seed=7)
    s = handlers.settings_from_form(160.0, 4, 0.5, 1.5, 3, 1, 0.5, 2)
    assert (s.size, s.steps, s.strength, s.guidance_context, s.guidance_global) == (160, 4, 0.5, 1.5, 3.0)
    assert (s.start, s.end) == (0.5, 2.0)
    with pytest.raises(UserError, match="time range"):
        handlers.settings_from_form(start=2, end=1)
    with pytest.raises(UserError, match="number of steps"):
        handlers.settings_from_form(steps=2.5)
    assert handlers.settings_from_form(adapt_steps=50.0).adapt_steps == 50
    with pytest.raises(UserError, match="adapt steps"):
        handlers.settings_from_form(adapt_steps=-3)
    # the border's stages: 0 frames is "off", not "the model's"; a checkbox is on or off
    assert handlers.settings_from_form(steady=0.0, keep_seen=True) == handlers.Settings(steady=0, keep_seen=True)
    assert handlers.settings_from_form().steady is None and handlers.settings_from_form().keep_seen is None
    assert handlers.settings_from_form(texture=0.0).texture == 0.0 and handlers.settings_from_form().texture is None
    with pytest.raises(UserError, match="steady frames"):
        handlers.settings_from_form(steady=-1)


def test_make_options_carries_everything():
    options = handlers.make_options(handlers.Target(ratio=1.0), handlers.Settings(size=128, steps=3, seed=5))
    assert (options.ratio, options.pad, options.size, options.steps, options.seed) == (1.0, None, 128, 3, 5)
    assert options.adapt.steps == 0
    tuned = handlers.make_options(handlers.Target(ratio=1.0), handlers.Settings(adapt_steps=20))
    assert tuned.adapt.steps == 20 and tuned.adapt.method == "lora"
    border = handlers.make_options(handlers.Target(ratio=1.0),
                                   handlers.Settings(steady=2, keep_seen=False, texture=0.5))
    assert (border.steady, border.keep_seen, border.texture) == (2, False, 0.5)


def test_generated_bands_cover_the_outside():
    bands = generated_bands(10, 20, Rect(0, 5, 10, 10))
    assert bands == [Rect(0, 0, 10, 5), Rect(0, 15, 10, 5)]
    assert sum(b.w * b.h for b in generated_bands(12, 12, Rect(2, 3, 4, 5))) == 12 * 12 - 4 * 5


def test_plan_preview_keeps_the_source_and_outlines_the_border():
    frame = np.full((120, 160, 3), 200, np.uint8)
    geometry = plan_geometry(120, 160, ratio=9 / 16, size=96)
    image = plan_preview(frame, geometry)
    assert image.shape == (geometry.output_h, geometry.output_w, 3)  # small outputs are shown 1:1
    k = geometry.output_known
    assert (image[k.y0 + 4: k.y1 - 4, 4:-4] == 200).all()  # the source, untouched inside
    assert tuple(image[0, image.shape[1] // 2]) == OUTLINE_RGB  # the top band's outline
    assert not (image[10:k.y0 - 10, 10:-10] == 200).all()  # the band is shaded, not the plain pre-fill
    big = plan_preview(np.zeros((1080, 1920, 3), np.uint8), plan_geometry(1080, 1920, ratio=9 / 16), max_side=400)
    assert max(big.shape[:2]) == 400


def test_preview_handler(clip):
    image, line = handlers.preview(clip, handlers.Target(ratio=9 / 16), 96)
    assert image.shape[0] > image.shape[1]
    assert line.startswith("160x120 -> 160x284")


def test_preview_and_outpaint_need_a_readable_video(tmp_path, tiny_pipe):
    with pytest.raises(UserError, match="upload a video"):
        handlers.preview(None, handlers.Target(ratio=9 / 16), 96)
    bad = write_garbage(tmp_path / "bad.mp4")
    with pytest.raises(UserError) as info:
        handlers.outpaint(tiny_pipe, bad, handlers.Target(ratio=9 / 16), handlers.Settings(), tmp_path / "jobs")
    assert "\n" not in str(info.value) and "bad.mp4" in str(info.value)


def test_outpaint_writes_result_side_by_side_and_reports_progress(tmp_path, tiny_pipe, clip):
    seen = []
    result = handlers.outpaint(tiny_pipe, clip, handlers.Target(ratio=9 / 16), handlers.Settings(seed=1),
                               tmp_path / "jobs", progress=lambda f, d: seen.append((f, d)))
    out = probe_video(result.video, exact=True)
    assert (out.num_frames, out.width, out.height) == (20, 160, 284)
    assert out.has_audio == probe_video(clip).has_audio
    both = probe_video(result.side_by_side, exact=True)
    assert both.num_frames == 20 and both.height == 284 and both.width > out.width
    assert seen[0] == (0.0, "reading the video") and (1.0, "window 2/2") in seen
    assert "20 frames" in result.info and "160x284" in result.info


def test_outpaint_time_range_and_pads(tmp_path, tiny_pipe, clip):
    result = handlers.outpaint(tiny_pipe, clip, handlers.target_from_form("pads", "", 16, 0, 16, 0),
                               handlers.Settings(start=0.25, end=0.5), tmp_path / "jobs")
    out = probe_video(result.video, exact=True)
    assert (out.num_frames, out.width, out.height) == (6, 192, 120)  # frames 6..11 at 24 fps
    assert "frames 6-11" in result.info and out.has_audio == probe_video(clip).has_audio


def test_time_range_outside_the_video(tmp_path, tiny_pipe, clip):
    with pytest.raises(UserError, match="holds no frames"):
        handlers.outpaint(tiny_pipe, clip, handlers.Target(ratio=9 / 16), handlers.Settings(start=5.0),
                          tmp_path / "jobs")


def test_impossible_ratio_gives_the_cli_message(tmp_path, tiny_pipe, clip):
    with pytest.raises(UserError, match="already has the aspect ratio"):
        handlers.api_outpaint(tiny_pipe, clip, "4:3", tmp_path / "jobs")


def test_job_folders_are_rotated(tmp_path):
    folders = [handlers.new_job_folder(tmp_path) for _ in range(handlers.KEEP_JOBS + 3)]
    assert len(list(tmp_path.iterdir())) == handlers.KEEP_JOBS
    assert folders[-1].is_dir()


def test_example_clips(tmp_path):
    clips = handlers.example_clips(tmp_path)
    assert clips[0].name == "pattern_160x120.mp4"
    for path in clips:
        info = probe_video(path, exact=True)
        assert 16 <= info.num_frames <= 64 and info.width <= 176
    assert handlers.example_clips(tmp_path) == clips  # written once, then reused
    assert isinstance(clips[0], Path)


def test_trim_keeps_the_audio_in_sync(tmp_path):
    """A time range from 0.25 s: a beep at 0.5 s in the source is at 0.25 s in the trimmed clip."""
    from m3ddm.io.samples import encoder_available, make_test_video
    from media_checks import decode_audio

    if not encoder_available("aac"):
        pytest.skip("no AAC encoder in this FFmpeg build")
    source = make_test_video(tmp_path / "beep.mp4", frames=24, size=(64, 48), fps=24, audio="aac", beep_at=0.5)
    clip, first, count = handlers.trim(source, 0.25, None, tmp_path)
    assert (first, count) == (6, 18) and clip != source
    samples, rate, start = decode_audio(clip)
    onset = start + np.argmax(np.abs(samples).max(axis=1) > 0.05) / rate
    assert onset == pytest.approx(0.25, abs=0.03)
    assert handlers.trim(source, 0, None, tmp_path) == (source, 0, 24)  # the whole video: no copy

"""`m3ddm outpaint` end to end with a tiny random model, and its answers to bad input."""

import numpy as np
import pytest

from m3ddm.cli import main
from m3ddm.io import open_video_source, probe_video
from m3ddm.io.samples import make_test_video
from media_checks import audio_stream_facts, horizontal_pan, psnr, write_garbage


@pytest.fixture(scope="module")
def video_with_audio(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "clip.mp4"
    make_test_video(path, frames=100, size=(320, 240), fps=25, audio="aac")
    return path


def test_end_to_end_100_frames_with_audio(video_with_audio, tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["outpaint", str(video_with_audio), "-o", str(out), "--ratio", "9:16", "--model", tiny_pipeline_dir,
                 "--steps", "1", "--batch-windows", "8", "--quiet"])
    assert code == 0
    summary = capsys.readouterr().out
    assert "100 frames" in summary and str(out) in summary
    info = probe_video(out, exact=True)
    assert info.num_frames == 100
    assert abs(info.width / info.height - 9 / 16) < 0.01
    assert info.has_audio and audio_stream_facts(out)["codec"] == audio_stream_facts(video_with_audio)["codec"]
    # The known region is the source at full resolution (only the H.264 round trip changes it).
    src = list(open_video_source(video_with_audio).iter_frames())
    got = list(open_video_source(out).iter_frames())
    top = (info.height - 240) // 2
    known = np.stack([g[top: top + 240, :320] for g in got])
    assert psnr(known, np.stack(src)) > 40
    assert not list(tmp_path.glob(".*"))  # no temp file or work folder left behind


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: d / "missing.mp4", ["--ratio", "9:16"], "not found"),
        (lambda d: write_garbage(d / "garbage.mp4"), ["--ratio", "9:16"], ""),
        (lambda d: make_test_video(d / "a.mp4", frames=4, size=(64, 48)), ["--ratio", "4:3"], "nothing to do"),
        (lambda d: make_test_video(d / "b.mp4", frames=4, size=(64, 48)), ["--ratio", "1:8"], "two passes"),
        (lambda d: make_test_video(d / "c.mp4", frames=4, size=(64, 48)), ["--ratio", "0:1"], ""),
        (lambda d: make_test_video(d / "d.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--scheduler", "heun"],
         "unknown scheduler"),
        (lambda d: make_test_video(d / "e.m4a", frames=4, video=False, audio="aac"), ["--ratio", "9:16"], ""),
        (lambda d: make_test_video(d / "f.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--strength", "1.5"],
         "strength must be in"),
        (lambda d: make_test_video(d / "g.mp4", frames=4, size=(64, 48)),
         ["--ratio", "9:16", "--strength", "0.5", "--init", "noise"], "needs init 'prefill'"),
        (lambda d: make_test_video(d / "h.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--noise-share", "1"],
         "noise share must be in"),
        (lambda d: make_test_video(d / "i.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--vae-batch", "0"],
         "VAE batch"),
        (lambda d: make_test_video(d / "j.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--prefill", "flow"],
         "pre-fill must be one of"),
        (lambda d: make_test_video(d / "k.mp4", frames=4, size=(64, 48)),
         ["--ratio", "9:16", "--official-output", "--keep-seen"], "--keep-seen changes the border"),
        (lambda d: make_test_video(d / "l.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--steady", "-1"],
         "--steady is a number of frames"),
        (lambda d: make_test_video(d / "m.mp4", frames=4, size=(64, 48)),
         ["--ratio", "9:16", "--official-output", "--steady", "2"], "--steady changes the border"),
        (lambda d: make_test_video(d / "n.mp4", frames=4, size=(64, 48)), ["--ratio", "9:16", "--texture", "2"],
         "--texture is a weight in [0, 1]"),
        (lambda d: make_test_video(d / "o.mp4", frames=4, size=(64, 48)),
         ["--ratio", "9:16", "--official-compat", "--scheduler", "pndm", "--texture", "0.5"],
         "--texture changes the border"),
    ],
)
def test_bad_input_exits_2_with_one_line(make, args, message, tiny_pipeline_dir, tmp_path, capsys):
    source = make(tmp_path)
    out = tmp_path / "out.mp4"
    code = main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert message in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_output_equal_to_input_and_incomplete_model(tiny_pipeline_dir, tmp_path, capsys):
    video = make_test_video(tmp_path / "v.mp4", frames=4, size=(64, 48))
    assert main(["outpaint", str(video), "-o", str(video), "--ratio", "9:16", "--model", tiny_pipeline_dir]) == 2
    assert "is the input" in capsys.readouterr().err
    (tmp_path / "empty_model").mkdir()
    assert main(["outpaint", str(video), "-o", str(tmp_path / "o.mp4"), "--ratio", "9:16",
                 "--model", str(tmp_path / "empty_model")]) == 2
    assert "model_index.json" in capsys.readouterr().err


def test_single_image_is_outpainted_as_a_still(tiny_pipeline_dir, tmp_path):
    import cv2

    image = tmp_path / "still.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    out = tmp_path / "still_out.png"
    assert main(["outpaint", str(image), "-o", str(out), "--pad", "16,0,16,0", "--model", tiny_pipeline_dir,
                 "--quiet"]) == 0
    result = cv2.imread(str(out))
    assert result.shape == (48, 96, 3)
    assert np.array_equal(result[:, 16:80], cv2.imread(str(image)))


# --- issue 13: timing, time ranges, progress, batches, controls ------------------------------------------

TINY = ["--ratio", "9:16", "--steps", "1", "--batch-windows", "8", "--strides", "1"]


def _frame_times(path) -> tuple[list[float], float]:
    """(each frame's time after the first, the video stream's duration) as a player reads them."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stamps = [frame.pts * stream.time_base for frame in container.decode(stream)]
        return [float(s - stamps[0]) for s in stamps], float(stream.duration * stream.time_base)


def test_variable_frame_rate_input_keeps_its_timestamps_duration_and_audio(tiny_pipeline_dir, tmp_path):
    from media_checks import decode_audio, make_vfr_video, onset_seconds

    times = [0.0, 0.04, 0.2, 0.23, 0.9, 0.95, 1.0, 1.7, 1.733, 1.766, 2.5, 2.6, 3.9, 3.95, 4.0, 6.0, 6.1, 6.2]
    source = make_vfr_video(tmp_path / "phone.mkv", times, end=6.3, audio="aac", beep_at=1.2)
    out = tmp_path / "out.mp4"
    assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet", *TINY]) == 0
    got, duration = _frame_times(out)
    assert len(got) == len(times)
    assert np.abs(np.array(got) - times).max() <= 1e-3 + 1e-9  # within one tick of the source (1 ms)
    assert duration == pytest.approx(6.3, abs=1e-3)
    samples, rate, first = decode_audio(out)
    assert onset_seconds(samples, rate, first) == pytest.approx(1.2, abs=0.003)


def test_exact_rate_and_frame_folder_fps(tiny_pipeline_dir, tmp_path):
    from fractions import Fraction

    source = make_test_video(tmp_path / "near.mp4", frames=10, size=(64, 48), fps=Fraction(2997, 125))
    video, folder = tmp_path / "out.mp4", tmp_path / "frames"
    for out in (video, folder):
        assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet", *TINY]) == 0
    assert probe_video(video, exact=True).fps == Fraction(2997, 125)  # not snapped to 24000/1001
    assert (folder / "fps.txt").read_text().strip() == "2997/125"
    assert open_video_source(folder).info.num_frames == 10


@pytest.mark.parametrize(("span", "frames", "beep"), [(["--start", "1", "--end", "3"], 50, 0.5),
                                                       (["--start", "0:03.5"], 12, None),
                                                       (["--end", "0.5"], 13, None)])
def test_time_range_gives_its_frames_and_audio(span, frames, beep, tiny_pipeline_dir, tmp_path):
    from media_checks import decode_audio, onset_seconds

    source = make_test_video(tmp_path / "clip.mp4", frames=100, size=(64, 48), fps=25, audio="aac",
                             beep_at=1.5 if beep is not None else None)
    out = tmp_path / "out.mp4"
    assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet", *TINY,
                 *span]) == 0
    assert probe_video(out, exact=True).num_frames == frames
    facts = audio_stream_facts(out)
    # Copied AAC ends within one packet (1024 samples at 44.1 kHz) after the video.
    assert frames / 25 - 1e-3 <= facts["duration"] <= frames / 25 + 1024 / 44100 + 1e-3
    if beep is not None:  # the sound moved with the pictures: the beep at 1.5 s of the source is at 0.5 s
        samples, rate, first = decode_audio(out)
        assert onset_seconds(samples, rate, first) == pytest.approx(beep, abs=0.003)


@pytest.mark.parametrize(("span", "message"), [(["--start", "5"], "no frame"),
                                               (["--start", "2", "--end", "1"], "must be after"),
                                               (["--start", "soon"], "")])
def test_bad_time_range_is_one_line(span, message, tiny_pipeline_dir, tmp_path, capsys):
    source = make_test_video(tmp_path / "clip.mp4", frames=10, size=(64, 48), fps=25)
    out = tmp_path / "out.mp4"
    try:
        code = main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, *TINY, *span])
    except SystemExit as exit_:  # argparse refuses a malformed time itself
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err.splitlines()[-1] and "Traceback" not in err
    assert not out.exists()


def test_a_log_gets_stage_lines_plan_estimate_and_progress_per_window(tiny_pipeline_dir, tmp_path, capsys):
    source = make_test_video(tmp_path / "clip.mp4", frames=40, size=(64, 48), fps=25)
    out = tmp_path / "out.mp4"
    # stderr is captured here, so it is not a terminal: the run writes lines, not a bar.
    assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--ratio", "9:16",
                 "--steps", "1", "--batch-windows", "1"]) == 0
    lines = capsys.readouterr().err.splitlines()
    for stage in ("loading:", "encoding:", "generating:", "writing:"):
        assert any(line.startswith(stage) for line in lines), stage
    plan = next(line for line in lines if line.startswith("generating:"))
    assert "windows" in plan and "UNet calls" in plan
    assert any(line.startswith("estimate: about") for line in lines)
    windows = [line for line in lines if line.startswith("window ")]
    total = int(windows[0].split()[1].split("/")[1])
    assert total >= 2 and len(windows) == total
    assert all("%" in line and "elapsed" in line and "ETA" in line for line in windows)
    assert windows[-1].startswith(f"window {total}/{total} (100%)")
    assert lines.index(plan) < lines.index(windows[0])


def test_batch_with_a_bad_file_writes_the_good_ones_and_exits_2(tiny_pipeline_dir, tmp_path, capsys):
    clips = tmp_path / "clips"
    make_test_video(clips / "a.mp4", frames=8, size=(64, 48))
    write_garbage(clips / "b.mp4")
    make_test_video(clips / "c.mp4", frames=8, size=(64, 48))
    outs = tmp_path / "outs"
    code = main(["outpaint", str(clips), str(tmp_path / "missing.mp4"), "-o", str(outs),
                 "--model", tiny_pipeline_dir, "--quiet", *TINY])
    captured = capsys.readouterr()
    assert code == 2
    assert sorted(p.name for p in outs.iterdir()) == ["a_outpainted.mp4", "c_outpainted.mp4"]  # nothing partial
    assert probe_video(outs / "a_outpainted.mp4", exact=True).num_frames == 8
    err = captured.err.strip().splitlines()
    failed = [line for line in err if line.startswith("m3ddm outpaint: failed:")]
    assert len(failed) == 2 and "b.mp4" in failed[0] and "missing.mp4" in failed[1]
    assert "Traceback" not in captured.err
    assert "2 of 4 inputs outpainted" in err[-1] and "b.mp4" in err[-1]
    assert captured.out.count("frames in") == 2


def test_preview_side_by_side_threads_and_auto_device(tiny_pipeline_dir, tmp_path):
    import cv2
    import torch

    source = make_test_video(tmp_path / "clip.mp4", frames=12, size=(64, 48), fps=24, audio="aac")
    out, sheet, side = tmp_path / "out.mp4", tmp_path / "sheet.png", tmp_path / "side.mp4"
    threads = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet", *TINY,
                     "--preview", str(sheet), "--side-by-side", str(side), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    info = probe_video(out, exact=True)
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] > info.height and image.shape[1] > 2 * info.width
    both = probe_video(side, exact=True)
    assert both.num_frames == 12 and both.height == info.height and both.width >= 2 * info.width
    assert both.has_audio and both.fps == 24


def test_preview_with_a_video_name_is_refused_before_any_work(tiny_pipeline_dir, tmp_path, capsys):
    source = make_test_video(tmp_path / "clip.mp4", frames=4, size=(64, 48))
    out = tmp_path / "out.mp4"
    code = main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, *TINY,
                 "--preview", str(tmp_path / "sheet.mp4")])
    assert code == 2 and "--preview writes an image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_help_states_the_real_defaults(capsys):
    import json

    from m3ddm.commands.outpaint import pick_device
    from m3ddm.pipeline import DEFAULT_MODEL_DIR

    with pytest.raises(SystemExit):
        main(["outpaint", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    shipped = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    assert f"{shipped['default_size']} for the shipped model" in text
    assert f"{shipped['default_steps']} for the shipped model" in text
    assert f"{shipped['default_noise_steps']} there from noise" in text
    assert "auto (default: cuda if available, then mps, else cpu)" in text
    import torch

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device("auto").type == expected


def test_colour_match_and_replace_known_flags_change_only_the_border(tiny_pipeline_dir, tmp_path):
    from m3ddm.io.samples import make_test_video

    source = make_test_video(tmp_path / "in.mp4", frames=8, size=(64, 48), fps=24)
    outs = {}
    for name, flags in {"plain": [], "no_match": ["--no-colour-match"], "replace": ["--replace-known"]}.items():
        out = tmp_path / f"{name}.mp4"
        assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet", *TINY,
                     *flags]) == 0
        outs[name] = np.stack(list(open_video_source(out).iter_frames())).astype(int)
    height = outs["plain"].shape[1]  # 9:16: the border is above and below the 48 source rows
    top, known = slice(0, 8), slice((height - 48) // 2 + 4, (height + 48) // 2 - 4)
    for name in ("no_match", "replace"):
        assert not np.array_equal(outs[name][:, top], outs["plain"][:, top]), name  # the border changes
        # the known region is the source in every case (up to H.264: its bits move with the border)
        assert np.abs(outs[name][:, known] - outs["plain"][:, known]).mean() < 4, name


def test_several_ratios_are_written_from_one_generation(video_with_audio, tiny_pipeline_dir, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["outpaint", str(video_with_audio), "-o", str(out), "--ratio", "9:16,1:1", "--model",
                 tiny_pipeline_dir, "--steps", "1", "--batch-windows", "8"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("generating:") for line in lines) == 1  # one generation
    assert sum(line.startswith("writing:") for line in lines) == 2
    assert not out.exists()
    src = np.stack(list(open_video_source(video_with_audio).iter_frames()))
    for name, ratio in (("out_9-16.mp4", 9 / 16), ("out_1-1.mp4", 1.0)):
        info = probe_video(tmp_path / name, exact=True)
        assert info.num_frames == 100 and abs(info.width / info.height - ratio) < 0.01, (name, info)
        got = np.stack(list(open_video_source(tmp_path / name).iter_frames()))
        top = (info.height - 240) // 2
        assert psnr(got[:, top: top + 240, :320], src) > 40  # the source, kept at full resolution
    square = np.stack(list(open_video_source(tmp_path / "out_1-1.mp4").iter_frames()))
    tall = np.stack(list(open_video_source(tmp_path / "out_9-16.mp4").iter_frames()))
    offset = (tall.shape[1] - square.shape[1]) // 2  # the square is the middle of the tall frame
    assert psnr(tall[:, offset: offset + square.shape[1]], square) > 35
    assert main(["outpaint", str(video_with_audio), "-o", str(out), "--ratio", "9:16,9:16", "--model",
                 tiny_pipeline_dir, "--quiet"]) == 2
    assert "repeat one ratio" in capsys.readouterr().err


def test_propagate_prefill_and_keep_seen_through_the_cli_on_a_pan(tiny_pipeline_dir, tmp_path):
    """On a panning clip (PNG frames) through the CLI: --prefill propagate changes the written border (the pipeline
    test checks what it encodes), not the picture; --keep-seen makes the border the real scene where other frames
    saw it (the ground truth is the wider pan), which a random model's border is not."""
    from m3ddm.io import write_frame_folder

    truth = horizontal_pan(num_frames=12, height=120, width=160, speed=3)
    source = tmp_path / "pan"
    write_frame_folder(source, truth[:, :, 20:140], fps=24)  # 120x120: to 4:3 the output has the truth's size
    runs = {"telea": ["--prefill", "telea", "--no-keep-seen"], "propagate": ["--prefill", "propagate",
            "--no-keep-seen"], "keep": ["--prefill", "propagate", "--keep-seen"]}
    outs = {}
    for name, flags in runs.items():
        out = tmp_path / f"{name}.mp4"
        assert main(["outpaint", str(source), "-o", str(out), "--model", tiny_pipeline_dir, "--quiet",
                     "--ratio", "4:3", "--steps", "2", "--strength", "0.5", "--crf", "0", *flags]) == 0
        outs[name] = np.stack(list(open_video_source(out).iter_frames())).astype(int)
    assert outs["keep"].shape == truth.shape
    border, known = (slice(None), slice(None), slice(0, 16)), (slice(None), slice(None), slice(24, 136))
    # (a random model's border is mostly the colour match's continuation of the edge: the pre-fill shows in detail)
    assert not np.array_equal(outs["propagate"][border], outs["telea"][border])
    assert np.abs(outs["propagate"][known] - outs["telea"][known]).mean() < 4
    later = (slice(8, None), slice(None), slice(2, 16))  # the left border of later frames: seen by earlier ones
    assert psnr(outs["keep"][later], truth[later]) > psnr(outs["propagate"][later], truth[later]) + 6


def _outpaint_frames_with(frames: np.ndarray, option: str, values, model: str, tmp_path) -> dict[str, np.ndarray]:
    """Write ``frames`` as PNGs, outpaint them to 16:9 through the CLI once per value of ``option`` (2 steps, one
    level, lossless), and read each written file back: {value: float frames}."""
    from m3ddm.io import write_frame_folder

    source = tmp_path / "frames"
    write_frame_folder(source, frames, fps=24)
    outs = {}
    for value in values:
        out = tmp_path / f"{option.strip('-')}{value}.mp4"
        assert main(["outpaint", str(source), "-o", str(out), "--model", model, "--quiet", "--ratio", "16:9",
                     "--steps", "2", "--strides", "1", option, value, "--crf", "0"]) == 0
        outs[value] = np.stack(list(open_video_source(out).iter_frames())).astype(float)
    return outs


def test_steady_makes_a_static_shots_border_steadier_in_the_file(tiny_pipeline_dir, tmp_path):
    """--steady through the CLI on a still shot (PNG frames): the written border changes less from frame to frame
    than without it; the picture is the same."""
    still = np.repeat(horizontal_pan(num_frames=1, height=72, width=96), 10, axis=0)
    outs = _outpaint_frames_with(still, "--steady", ("0", "3"), tiny_pipeline_dir, tmp_path)
    width = outs["0"].shape[2]
    side = (width - 96) // 2
    change = {k: np.abs(np.diff(v[:, :, : side - 2], axis=0)).mean() for k, v in outs.items()}
    assert change["3"] < 0.6 * change["0"], change
    known = (slice(None), slice(None), slice(side + 4, side + 92))
    assert np.abs(outs["3"][known] - outs["0"][known]).mean() < 1


def test_texture_puts_the_pictures_grain_next_to_it_in_the_file(tiny_pipeline_dir, tmp_path):
    """--texture through the CLI (PNG frames of a grainy picture): the written file gains grain in the band of the
    border next to the picture, as strong as the squashed grain of the picture's strip, and nothing elsewhere."""
    grain = np.random.default_rng(0).integers(90, 170, (1, 72, 96, 3)).astype(np.uint8)
    outs = _outpaint_frames_with(np.repeat(grain, 3, axis=0), "--texture", ("0", "1"), tiny_pipeline_dir, tmp_path)
    added = np.abs(outs["1"] - outs["0"]).mean(axis=(0, 1, 3))  # per column
    side = (outs["0"].shape[2] - 96) // 2
    assert added[side: side + 96].max() == 0, "the picture is the same"
    assert added[0] == 0 and added[-1] == 0, "nothing at the far edge (beyond the reach)"
    assert added[side // 2: side - 2].mean() > 2 and added[side + 98: side + 96 + side // 2].mean() > 2, added


def test_the_models_steps_from_noise_apply_at_strength_1_only(tiny_pipeline_dir, tmp_path, capsys):
    """A model folder with ``default_noise_steps`` runs that many steps from pure noise and its ``default_steps``
    below strength 1; an explicit --steps wins either way (checked on the written files)."""
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, model)
    index = json.loads((model / "model_index.json").read_text())
    assert index["default_steps"] == 2
    (model / "model_index.json").write_text(json.dumps({**index, "default_noise_steps": 1}))
    source = make_test_video(tmp_path / "in.mp4", frames=6, size=(64, 48), fps=24)

    def outpaint(name: str, *flags: str) -> np.ndarray:
        out = tmp_path / f"{name}.mp4"
        assert main(["outpaint", str(source), "-o", str(out), "--model", str(model), "--quiet", "--ratio", "9:16",
                     "--strides", "1", "--crf", "0", *flags]) == 0
        return np.stack(list(open_video_source(out).iter_frames()))

    noise = outpaint("noise", "--strength", "1")
    assert np.array_equal(noise, outpaint("noise1", "--strength", "1", "--steps", "1"))
    assert not np.array_equal(noise, outpaint("noise2", "--strength", "1", "--steps", "2"))
    half = outpaint("half", "--strength", "0.5")
    assert np.array_equal(half, outpaint("half2", "--strength", "0.5", "--steps", "2"))
    assert not np.array_equal(half, outpaint("half1", "--strength", "0.5", "--steps", "1"))
    # a hand-edited model folder with an impossible number: one line, exit 2, no file
    for key, value in (("default_noise_steps", -1), ("default_steps", "five")):
        (model / "model_index.json").write_text(json.dumps({**index, key: value}))
        out = tmp_path / "bad.mp4"
        assert main(["outpaint", str(source), "-o", str(out), "--model", str(model), "--quiet", "--ratio", "9:16",
                     "--strength", "1"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and f"{key} must be" in error and "model_index.json" in error, error
        assert not out.exists()


@pytest.mark.parametrize("before, after, refused, message", [
    # a model trained on a filled context is fed one (its hidden context is filled, not black)
    ({"context_encoding": "latent_mask"}, {"context_encoding": "latent_fill"}, {"context_encoding": "latent_grey"},
     "context_encoding must be"),
    # a model that denoises relative to its filled context is sampled so (input and output shifted by the context)
    ({"context_encoding": "latent_fill"}, {"context_encoding": "latent_fill", "relative_to_context": True},
     {"context_encoding": "latent_mask", "relative_to_context": True}, "relative_to_context needs a context_encoding"),
    # a relative model whose hidden context comes from the pre-fill's latents has that pre-fill as its base
    ({"context_encoding": "latent_fill", "relative_to_context": True},
     {"context_encoding": "latent_prefill", "relative_to_context": True},
     {"context_encoding": "letterbox", "relative_to_context": True}, "relative_to_context needs a context_encoding"),
])
def test_the_model_folder_says_how_its_context_is_built_and_the_cli_follows(tiny_pipeline_dir, tmp_path, capsys,
                                                                           before, after, refused, message):
    """The same weights in a folder whose ``model_index.json`` says ``after`` write a file whose picture is the same
    as with ``before`` and whose border differs; an impossible setting (``refused``) is one line, exit 2, no file."""
    import json
    import shutil

    source = make_test_video(tmp_path / "in.mp4", frames=6, size=(64, 48), fps=24)
    outs = {}
    for name, settings in (("before", before), ("after", after), ("refused", refused)):
        model = tmp_path / name
        shutil.copytree(tiny_pipeline_dir, model)
        index = json.loads((model / "model_index.json").read_text())
        (model / "model_index.json").write_text(json.dumps({**index, **settings}))
        out = tmp_path / f"{name}.mp4"
        code = main(["outpaint", str(source), "-o", str(out), "--model", str(model), "--quiet", "--ratio", "16:9",
                     "--strides", "1", "--crf", "0", "--strength", "1", "--steps", "2"])
        if name == "refused":
            error = capsys.readouterr().err.strip()
            assert code == 2 and not out.exists()
            assert error.count("\n") == 0 and message in error, error
            continue
        assert code == 0
        outs[name] = np.stack(list(open_video_source(out).iter_frames())).astype(float)
    side = (outs["before"].shape[2] - 64) // 2
    picture = (slice(None), slice(None), slice(side + 4, side + 60))
    in_picture = np.abs(outs["after"][picture] - outs["before"][picture]).mean()
    in_border = np.abs(outs["after"][:, :, : side - 2] - outs["before"][:, :, : side - 2]).mean()
    assert in_border > 0.2 and in_border > 5 * in_picture, (in_border, in_picture)

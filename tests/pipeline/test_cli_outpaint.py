"""`m3ddm outpaint` end to end with a tiny random model, and its answers to bad input."""

import numpy as np
import pytest

from m3ddm.cli import main
from m3ddm.io import open_video_source, probe_video
from m3ddm.io.testing import audio_stream_facts, make_test_video, psnr, write_garbage


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

"""The Gradio app: the stable API through gradio_client, the one-job queue, errors in the UI, lazy gradio import."""

import os
import subprocess
import sys
import urllib.request

import pytest

from m3ddm.cli import main
from m3ddm.io import probe_video


def _fn(demo, api_name: str):
    return next(f for f in demo.fns.values() if f.api_name == api_name)


def test_core_never_imports_gradio():
    code = ("import sys, m3ddm.pipeline, m3ddm.cli, m3ddm.app, m3ddm.app.handlers, m3ddm.app.preview, m3ddm.comfyui; "
            "m3ddm.cli.build_parser(); assert 'gradio' not in sys.modules, 'gradio imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_app_command_without_gradio_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the extra were not installed
    assert main(["app", "--port", "7999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "m3ddm app: error: the web app needs the app extra: pip install -e '.[app]' (gradio, gradio_client)"


def test_outpaint_events_share_one_slot(tiny_pipe, clip, tmp_path):
    pytest.importorskip("gradio")
    from m3ddm.app.ui import JOB_QUEUE, build_demo

    demo = build_demo(tiny_pipe, work_root=tmp_path, examples=[clip])
    for name in ("outpaint", "outpaint_form"):
        fn = _fn(demo, name)
        assert (fn.concurrency_limit, fn.concurrency_id) == (1, JOB_QUEUE)
    assert demo._queue.default_concurrency_limit == 1


def test_user_mistake_becomes_one_line_gr_error(tiny_pipe, clip, tmp_path):
    gr = pytest.importorskip("gradio")
    from m3ddm.app.ui import build_demo

    demo = build_demo(tiny_pipe, work_root=tmp_path, examples=[clip])
    run = _fn(demo, "outpaint_form").fn
    form = dict(mode="ratio", ratio="4:3", left=0, top=0, right=0, bottom=0, size=96, steps=2, strength=1.0,
                s1=2, s2=4, seed=0, start=0, end=0)
    with pytest.raises(gr.Error) as info:
        run(str(clip), *form.values())
    assert info.value.message == "the video already has the aspect ratio 1.333: nothing to do"
    with pytest.raises(gr.Error, match="upload a video or pick an example first"):
        run(None, *form.values())
    video, comparison, download, line = run(str(clip), *{**form, "ratio": "1:1"}.values())
    assert probe_video(video).size == (160, 160) and download == video and "20 frames" in line


def test_gradio_client_outpaint_api(app_url, clip):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="nothing to do"):  # a user mistake comes back as its one line...
        client.predict(handle_file(str(clip)), "4:3", api_name="/outpaint")
    result = client.predict(handle_file(str(clip)), "9:16", api_name="/outpaint")  # ...and the app goes on
    info = probe_video(result, exact=True)
    source = probe_video(clip, exact=True)
    assert info.num_frames == source.num_frames == 20
    assert info.width / info.height == pytest.approx(9 / 16, abs=0.01)
    assert info.has_audio == source.has_audio


def test_app_command_serves_the_page(tmp_path, free_port):
    """`m3ddm app` with the shipped default model starts and serves the page (then is stopped)."""
    pytest.importorskip("gradio")
    port = free_port
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "m3ddm", "app", "--port", str(port), "--work-dir",
                                str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # the command prints its "serving on" line once the server listens: wait on that line, no polling
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "serving on" in line:
                break
        assert any(f"serving on http://127.0.0.1:{port}" in line for line in lines), "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as response:
            page = response.read().decode()
        assert "m3ddm video outpainting" in page
    finally:
        process.terminate()
        process.communicate(timeout=30)

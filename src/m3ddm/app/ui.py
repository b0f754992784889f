"""The Gradio Blocks app: widgets and events over ``m3ddm.app.handlers``. gradio is imported only here, and only
when the app is built (``pip install -e .[app]``), so the core package never needs it.

One outpaint runs at a time (a queue with concurrency 1 shared by the form and the API), because one job already
uses every core a CPU machine has. A user mistake (``UserError``) becomes ``gr.Error`` with the CLI's one-line
message; the app keeps running.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from m3ddm.app import handlers
from m3ddm.errors import UserError

JOB_QUEUE = "m3ddm-outpaint"  # one concurrency group: the form's button and the API endpoint share one slot
INSTALL_HINT = "the web app needs the app extra: pip install -e '.[app]' (gradio, gradio_client)"


def require_gradio():
    """gradio, or a UserError saying how to install it."""
    # No usage statistics or version checks from a local tool (and no network on many of our machines).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "gradio":
            raise UserError(INSTALL_HINT) from None
        raise
    return gradio


def _user_errors(fn):
    """Run a handler; a UserError is shown in the UI as gr.Error with its one line (and the queue goes on)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gr = require_gradio()
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
    return wrapper


def build_demo(pipe, model_label: str = "the shipped default model", work_root: str | os.PathLike | None = None,
               examples: list[str | os.PathLike] | None = None):
    """The app's Blocks (not launched). ``pipe`` is a loaded M3DDMPipeline; files go under ``work_root``."""
    gr = require_gradio()
    root = Path(work_root) if work_root else Path(tempfile.gettempdir()) / "m3ddm-app"
    jobs_root = root / "jobs"
    if examples is None:
        examples = handlers.example_clips(root / "examples")
    defaults = handlers.model_defaults(pipe)

    def preview(video, mode, ratio, left, top, right, bottom, size):
        # Not an error popup on every keystroke: a bad value shows as the description line instead.
        if not video:
            return None, "Upload a video or pick an example to see the canvas."
        try:
            target = handlers.target_from_form(mode, ratio, left, top, right, bottom)
            image, line = handlers.preview(video, target, int(size or defaults.size))
        except UserError as exc:
            return None, f"**Cannot outpaint this:** {exc}"
        return image, f"Region to generate outlined in magenta. {line}"

    # gradio finds the progress tracker by a Progress default; track_tqdm follows the pipeline's step bar
    tracker = gr.Progress(track_tqdm=True)

    @_user_errors
    def run(video, mode, ratio, left, top, right, bottom, size, steps, strength, s1, s2, seed, start, end,
            adapt_steps=0, steady=None, keep_seen=None, texture=None, progress=tracker):
        target = handlers.target_from_form(mode, ratio, left, top, right, bottom)
        settings = handlers.settings_from_form(size, steps, strength, s1, s2, seed, start, end, adapt_steps,
                                               steady, keep_seen, texture)
        result = handlers.outpaint(pipe, video, target, settings, jobs_root,
                                   progress=lambda f, d: progress(f, desc=d), step_bar=True)
        return str(result.video), str(result.side_by_side), str(result.video), result.info

    @_user_errors
    def api(video, ratio, progress=tracker):
        return str(handlers.api_outpaint(pipe, video, ratio, jobs_root, progress=lambda f, d: progress(f, desc=d)))

    with gr.Blocks(title="m3ddm video outpainting") as demo:
        gr.Markdown(f"## m3ddm: video outpainting\nModel: {model_label}. Upload a clip, pick a target, check the "
                    "preview, then outpaint. One job runs at a time; others wait in the queue.")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Input video", sources=["upload"], include_audio=True, elem_id="input-video",
                                 height=360)
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[video], label="Example clips")
                mode = gr.Radio(list(handlers.MODES), value="ratio", label="Target",
                                info="a new aspect ratio, or a border on each side: fractions of the source "
                                     "side (< 1) or pixels (>= 1)")
                ratio = gr.Dropdown(list(handlers.RATIO_PRESETS), value="9:16", allow_custom_value=True,
                                    label="Aspect ratio (W:H)", elem_id="ratio")
                with gr.Row(visible=False) as pad_row:
                    # a quarter of the width on each side to start with (16:9 -> about 2.4:1)
                    pads = [gr.Number(value, label=f"{side} pad", minimum=0, min_width=60)
                            for side, value in (("left", 0.25), ("top", 0), ("right", 0.25), ("bottom", 0))]
                with gr.Accordion("Generation settings", open=False):
                    size = gr.Slider(64, 768, value=defaults.size, step=8, label="Working size (long side, px)")
                    # 0 leaves the number to the model, which may run another number from pure noise
                    steps = gr.Slider(0, 100, value=0, step=1,
                                      label=f"Denoising steps (0 = the model's: {defaults.steps}, "
                                            f"{pipe.steps_for(1.0)} from noise)")
                    strength = gr.Slider(0.05, 1.0, value=defaults.strength, step=0.05,
                                         label="Strength (1 = from noise; lower = refine the pre-fill)")
                    steady = gr.Slider(0, 12, value=defaults.steady, step=1,
                                       label="Steady border (frames on each side averaged along the camera's "
                                             "motion; 0 = off)")
                    keep_seen = gr.Checkbox(value=defaults.keep_seen,
                                            label="Keep what other frames saw (sharp; for pans of a still scene)")
                    texture = gr.Slider(0.0, 1.0, value=defaults.texture, step=0.05,
                                        label="Texture (the picture's grain lent to the border next to it; 0 = off)")
                    with gr.Row():
                        s1 = gr.Number(defaults.guidance_context, label="Guidance s1 (context)", step=0.5)
                        s2 = gr.Number(defaults.guidance_global, label="Guidance s2 (global frames)", step=0.5)
                    seed = gr.Number(0, label="Seed", precision=0)
                    with gr.Row():
                        start = gr.Number(0, label="Start (s)", minimum=0)
                        end = gr.Number(0, label="End (s, 0 = to the end)", minimum=0)
                    adapt_steps = gr.Number(0, label="Adapt steps (tune on this clip first; 0 = off, slow on CPU)",
                                            minimum=0, precision=0)
                button = gr.Button("Outpaint", variant="primary", elem_id="run")
            with gr.Column(scale=1):
                canvas = gr.Image(label="Preview: first frame on the new canvas", type="numpy", interactive=False,
                                  elem_id="preview")
                canvas_info = gr.Markdown("Upload a video or pick an example to see the canvas.")
                result = gr.Video(label="Result", interactive=False, elem_id="result", height=480)
                info = gr.Markdown(elem_id="result-info")
                with gr.Accordion("Side by side and download", open=True):
                    comparison = gr.Video(label="Source | result", interactive=False, elem_id="side-by-side",
                                          height=320)
                    download = gr.File(label="Download the result", interactive=False)

        # The stable API: (video file, ratio) -> video file. Hidden from the page, listed in "Use via API".
        with gr.Row(visible=False):
            api_video = gr.File(label="video", file_types=["video"], type="filepath")
            api_ratio = gr.Textbox(label="ratio", value="9:16")
            api_result = gr.File(label="outpainted video")
            api_button = gr.Button("api")

        mode.change(lambda m: (gr.update(visible=m == "ratio"), gr.update(visible=m == "pads")),
                    inputs=[mode], outputs=[ratio, pad_row], api_visibility="private", queue=False)
        preview_inputs = [video, mode, ratio, *pads, size]
        for trigger in (video.change, mode.change, ratio.change, size.release, *(p.change for p in pads)):
            trigger(preview, inputs=preview_inputs, outputs=[canvas, canvas_info], api_visibility="private",
                    concurrency_limit=4, concurrency_id="m3ddm-preview", show_progress="hidden")
        button.click(run, inputs=[video, mode, ratio, *pads, size, steps, strength, s1, s2, seed, start, end,
                             adapt_steps, steady, keep_seen, texture],
                     outputs=[result, comparison, download, info], api_name="outpaint_form",
                     concurrency_limit=1, concurrency_id=JOB_QUEUE)
        api_button.click(api, inputs=[api_video, api_ratio], outputs=[api_result], api_name="outpaint",
                         concurrency_limit=1, concurrency_id=JOB_QUEUE)
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def launch(demo, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False):
    """Serve the app; ``block=False`` returns once it is up (tests, notebooks)."""
    return demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True,
                       quiet=quiet, share=False, inbrowser=False, footer_links=["api"])

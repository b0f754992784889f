"""The ComfyUI nodes, called directly as ComfyUI would (no ComfyUI installed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from m3ddm.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from m3ddm.errors import UserError
from m3ddm.io.samples import pattern_frame

WORKFLOW = Path(__file__).parents[2] / "examples" / "comfyui" / "m3ddm_outpaint_workflow.json"
SOCKET_TYPES = {"IMAGE", "MASK", "M3DDM_PIPELINE", "VIDEO", "AUDIO", "LATENT", "MODEL"}


def frames(n: int = 16, height: int = 120, width: int = 160) -> torch.Tensor:
    """A ComfyUI IMAGE batch [n, height, width, 3] in [0, 1] (exact multiples of 1/255)."""
    return torch.stack([torch.from_numpy(pattern_frame(i, width, height)) for i in range(n)]).float() / 255


def test_mappings_follow_comfyui_conventions():
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    assert set(NODE_DISPLAY_NAME_MAPPINGS.values()) == {"M3DDM Load Pipeline", "M3DDM Outpaint",
                                                        "M3DDM Plan Preview"}
    for cls in NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
        assert isinstance(cls.RETURN_TYPES, tuple) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        assert callable(getattr(cls(), cls.FUNCTION)) and cls.CATEGORY == "m3ddm"
        for name, entry in spec["required"].items():
            kind = entry[0]
            assert isinstance(kind, list | str), name  # a combo's choices or a type name
            if isinstance(kind, list):
                assert entry[1]["default"] in kind


def test_imports_without_comfyui_or_gradio():
    code = "import sys, m3ddm.comfyui; assert not {'comfy', 'gradio', 'folder_paths'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_outpaint_16_frames_to_9_16(tiny_pipe):
    images = frames()
    assert images.shape == (16, 120, 160, 3)
    node = NODE_CLASS_MAPPINGS["M3DDMOutpaint"]()
    out, mask = node.outpaint(tiny_pipe, images, 24.0, "ratio", "9:16", 0, 0, 0, 0, seed=3)
    assert out.shape == (16, 284, 160, 3) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert mask.shape == (16, 284, 160)
    assert out.shape[2] / out.shape[1] == pytest.approx(9 / 16, abs=0.01)
    # the source is kept exactly; the mask is 1 exactly on the new rows (82 above, 82 below)
    assert torch.equal(mask[0, :82], torch.ones(82, 160)) and torch.equal(mask[0, 82:202], torch.zeros(120, 160))
    assert torch.allclose(out[:, 82:202], images, atol=1e-6)
    assert out[:, :82].std() > 0  # something was generated there


def test_outpaint_with_pads_and_settings(tiny_pipe):
    node = NODE_CLASS_MAPPINGS["M3DDMOutpaint"]()
    images = frames(4, 48, 64)
    out, mask = node.outpaint(tiny_pipe, images, 30.0, "pads", "", 16, 0, 8, 0, size=128, steps=1, strength=0.5,
                              guidance_context=1.0, guidance_global=1.0, seed=0)
    assert out.shape == (4, 48, 88, 3) and mask.shape == (4, 48, 88)
    assert mask[0, 0, :16].eq(1).all() and mask[0, 0, 16:80].eq(0).all() and mask[0, 0, 80:].eq(1).all()
    assert torch.allclose(out[:, :, 16:80], images, atol=1e-6)


def test_outpaint_adapt_steps_tune_on_the_clip(tiny_pipe):
    node = NODE_CLASS_MAPPINGS["M3DDMOutpaint"]()
    images = frames(4, 48, 64)
    plain, _ = node.outpaint(tiny_pipe, images, 30.0, "pads", "", 16, 0, 0, 0, size=128, steps=1, seed=0)
    before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    tuned, _ = node.outpaint(tiny_pipe, images, 30.0, "pads", "", 16, 0, 0, 0, size=128, steps=1, seed=0,
                             adapt_steps=2)
    assert tuned.shape == plain.shape and not torch.equal(tuned[:, :, :16], plain[:, :, :16])
    assert torch.allclose(tuned[:, :, 16:], images, atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in tiny_pipe.unet.state_dict().items())  # the base is untouched


def test_outpaint_border_stages_reach_the_pipeline(tiny_pipe, monkeypatch):
    node = NODE_CLASS_MAPPINGS["M3DDMOutpaint"]()
    seen = []
    real = tiny_pipe.outpaint_array

    def spy(*args, **kwargs):
        seen.append((kwargs["steady"], kwargs["keep_seen"], kwargs["texture"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(tiny_pipe, "outpaint_array", spy)
    images = frames(4, 48, 64)
    node.outpaint(tiny_pipe, images, 30.0, "pads", "", 16, 0, 0, 0, size=128, steps=1, seed=0)
    node.outpaint(tiny_pipe, images, 30.0, "pads", "", 16, 0, 0, 0, size=128, steps=1, seed=0, steady=2,
                  keep_seen="on", texture=0.5)
    assert seen == [(None, None, None), (2, True, 0.5)]


@pytest.mark.parametrize(("target", "ratio", "pads", "message"), [
    ("pads", "", (0, 0, 0, 0), "all pads are zero"),
    ("ratio", " ", (0, 0, 0, 0), "choose a target aspect ratio"),
    ("ratio", "4:3", (0, 0, 0, 0), "already has the aspect ratio"),
    ("ratio", "8:1", (0, 0, 0, 0), "outpaint in two passes"),
])
def test_outpaint_mistakes_are_user_errors(tiny_pipe, target, ratio, pads, message):
    node = NODE_CLASS_MAPPINGS["M3DDMOutpaint"]()
    with pytest.raises(UserError, match=message):
        node.outpaint(tiny_pipe, frames(2), 24.0, target, ratio, *pads)


def test_plan_preview_node():
    node = NODE_CLASS_MAPPINGS["M3DDMPlanPreview"]()
    (image,) = node.preview(frames(3), "ratio", "9:16", 0, 0, 0, 0, max_side=1024)
    assert image.shape == (1, 284, 160, 3)
    assert torch.allclose(image[0, 0, 80], torch.tensor([255, 60, 170]) / 255.0)  # the outline, magenta
    (small,) = node.preview(frames(1), "pads", "", 0, 40, 0, 0, max_side=80)
    assert small.shape[1:] == (80, 80, 3)


def test_load_pipeline_node(tmp_path, tiny_pipe):
    node = NODE_CLASS_MAPPINGS["M3DDMLoadPipeline"]()
    (pipe,) = node.load("default", device="cpu")
    assert pipe.config.default_size > 0
    tiny_pipe.save_pretrained(tmp_path / "tiny")
    (loaded,) = node.load("folder", model_dir=str(tmp_path / "tiny"), device="cpu")
    assert loaded.config.default_size == 96
    with pytest.raises(UserError, match="needs model_dir"):
        node.load("folder")
    with pytest.raises(UserError, match="needs both unet_dir and vae_dir"):
        node.load("official", unet_dir="x")
    with pytest.raises(UserError, match="model folder not found"):
        node.load("folder", model_dir=str(tmp_path / "missing"))


def _widget_names(cls) -> list[str]:
    names = []
    for name, entry in cls.INPUT_TYPES()["required"].items():
        if isinstance(entry[0], list) or entry[0] not in SOCKET_TYPES:
            names.append(name)
            if name == "seed":
                names.append("control_after_generate")  # the ComfyUI frontend adds it after a seed
    return names


def test_example_workflow_matches_the_nodes():
    workflow = json.loads(WORKFLOW.read_text())
    nodes = {n["id"]: n for n in workflow["nodes"]}
    ours = [n for n in nodes.values() if n["type"] in NODE_CLASS_MAPPINGS]
    assert {n["type"] for n in ours} == set(NODE_CLASS_MAPPINGS)
    for n in ours:
        cls = NODE_CLASS_MAPPINGS[n["type"]]
        assert len(n["widgets_values"]) == len(_widget_names(cls)), n["type"]
        assert [o["type"] for o in n["outputs"]] == list(cls.RETURN_TYPES)
        required = cls.INPUT_TYPES()["required"]
        for slot in n["inputs"]:
            assert required[slot["name"]][0] == slot["type"]
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        assert nodes[src]["outputs"][src_slot]["type"] == kind and link_id in nodes[src]["outputs"][src_slot]["links"]
        assert nodes[dst]["inputs"][dst_slot]["link"] == link_id
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])

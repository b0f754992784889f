"""Numeric parity with the official UNet: ``python -m m3ddm.compat.parity FIXTURE_DIR``.

A fixture folder holds ``config.json`` + ``diffusion_pytorch_model.safetensors`` (an official-layout UNet),
``inputs.safetensors``, ``outputs.safetensors`` and ``forward_kwargs.json`` (cases, tolerance). Every case is run,
its max absolute error printed, and the exit code is 0 only if all outputs are within tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from m3ddm.errors import UserError
from m3ddm.models import M3DDMUNet


@dataclass
class CaseResult:
    name: str
    max_abs_error: float
    passed: bool


def _compare(name: str, got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> CaseResult:
    if got.shape != want.shape:
        return CaseResult(name, float("inf"), False)
    err = (got.double() - want.double()).abs().max().item()
    return CaseResult(name, err, bool(torch.allclose(got, want, atol=atol, rtol=rtol)))


@torch.no_grad()
def run_parity(fixture_dir: str | Path) -> list[CaseResult]:
    folder = Path(fixture_dir)
    for name in ("forward_kwargs.json", "inputs.safetensors", "outputs.safetensors"):
        if not (folder / name).is_file():
            raise UserError(f"{folder} is not a parity fixture folder (missing {name})")
    spec = json.loads((folder / "forward_kwargs.json").read_text())
    atol, rtol = spec["tolerance"]["atol"], spec["tolerance"]["rtol"]
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs = load_file(str(folder / "outputs.safetensors"))
    model = M3DDMUNet.from_pretrained(folder, torch_dtype=torch.float32).eval()

    results = []
    for name, case in spec["cases"].items():
        p = case["inputs_prefix"]
        got = model(
            inputs[f"{p}.sample"], inputs[f"{p}.timestep"], b=case["b"], g=case["g"], f=case["f"],
            is_empty_img=case["is_empty_img"], do_classfier=case["do_classfier"],
            encoder_hidden_states=inputs[f"{p}.global_latents"], fps=inputs[f"{p}.fps"],
        ).sample
        results.append(_compare(name, got, outputs[case["output_key"]], atol, rtol))

    # Intermediates: the embedding MLPs and the global encoder on its own.
    for key in outputs:
        prefix, _, what = key.rpartition(".")
        if what in ("temb", "femb"):
            n = outputs[key].shape[0]
            temb, femb = model.embeddings(inputs[f"{prefix}.timestep"], inputs[f"{prefix}.fps"], n, torch.device("cpu"))
            results.append(_compare(key, temb if what == "temb" else femb, outputs[key], atol, rtol))
        elif what == "out" and f"{prefix}.in" in inputs:
            got = model.global_img_encoder(inputs[f"{prefix}.in"])
            results.append(_compare(key, got, outputs[key], atol, rtol))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m3ddm.compat.parity", description=__doc__.splitlines()[0])
    parser.add_argument("fixture_dir")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        results = run_parity(args.fixture_dir)
    except UserError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return 2
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{r.name:<{width}}  max abs error {r.max_abs_error:.3e}  {'ok' if r.passed else 'FAIL'}")
    failed = [r.name for r in results if not r.passed]
    summary = f"{len(results) - len(failed)} of {len(results)} cases within tolerance"
    print(summary + (f"; failed: {failed}" if failed else ""))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

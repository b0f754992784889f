"""Checkpoint folders: ``<out>/checkpoints/step-00001000/`` written atomically, found, pruned.

A checkpoint is written by ``accelerator.save_state`` into a hidden temporary folder beside the final one and
renamed only once every process has finished writing and ``trainer_state.json`` (written last) is in place. A crash
mid-save leaves at most a ``.tmp-*`` folder, which is ignored and cleaned up, never a broken ``step-*`` folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from m3ddm.utils.atomic import atomic_path

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{8,})$")


@dataclass
class TrainerState:
    """What the loop needs beyond model/optimizer/EMA/LR/RNG states to continue exactly."""

    step: int = 0
    skipped_videos: int = 0
    bad_steps_total: int = 0
    bad_step_streak: int = 0
    clips_seen: int = 0
    world_size: int = 1
    lr_origin: int = 0  # the step the LR schedule started from (a warm start's step); it spans max_steps - lr_origin
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_file(cls, path: Path) -> TrainerState:
        return cls(**json.loads(path.read_text()))


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    folder = Path(output_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def temporary_checkpoint_dir(output_dir: str | os.PathLike, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f".tmp-{checkpoint_name(step)}"


def clear_temporary(output_dir: str | os.PathLike) -> None:
    """Remove leftovers of interrupted saves (main process only)."""
    folder = Path(output_dir) / CHECKPOINTS
    if folder.is_dir():
        for child in folder.iterdir():
            if child.name.startswith(".tmp-") or child.name.startswith(".step-"):
                shutil.rmtree(child, ignore_errors=True)


def finalize_checkpoint(tmp_dir: Path, step: int, state: TrainerState) -> Path:
    """Write the trainer state into ``tmp_dir`` and move it to its final name (main process only)."""
    with atomic_path(tmp_dir / STATE_FILE) as tmp:
        tmp.write_text(state.to_json())
    final = tmp_dir.parent / checkpoint_name(step)
    if final.exists():  # re-saving the same step (e.g. the final save after a resume): replace it whole
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp_dir, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, final)
    return final


def prune_checkpoints(output_dir: str | os.PathLike, keep: int) -> None:
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)

"""`m3ddm bench unet | memory | official`: speed, memory and FLOP benchmarks that print a table (or JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from m3ddm.commands.arguments import parse_int_list, parse_ratio, parse_size


def _source_size(args: argparse.Namespace) -> tuple[int, int]:
    """--source-size of the synthetic H.264 clip: even sides of at least 8 pixels."""
    return parse_size(args.source_size, "--source-size", minimum=8, even=True)

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="speed, memory and FLOP benchmarks",
        description="Benchmarks. Each measurement that reports memory runs in a fresh process unless --in-process.",
    )
    benches = parser.add_subparsers(dest="bench", metavar="BENCH")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    unet = benches.add_parser("unet", help="one UNet forward on a guidance batch, per preset",
                              description="Time (median of --repeats after a warm-up), peak memory, FLOPs and "
                                          "parameters of one UNet call: --batch rows (3 = null, local and full "
                                          "guidance branches) of --frames latent frames, 16 shared global frames.")
    unet.add_argument("--presets", default="mini,small", help="comma-separated UNet presets (tiny, mini, small, "
                                                               "base, official)")
    unet.add_argument("--frames", type=int, default=16)
    unet.add_argument("--latent", type=int, default=32, help="latent side (32 = a 256x256 canvas)")
    unet.add_argument("--batch", type=int, default=3)
    unet.add_argument("--repeats", type=int, default=5)
    unet.add_argument("--attention", choices=("sdpa", "naive"), default="sdpa")
    unet.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    unet.add_argument("--channels-last", action="store_true", help="2D convolution weights in NHWC order")
    unet.add_argument("--compile", action="store_true", help="torch.compile the UNet (the warm-up call compiles)")
    _common(unet)
    unet.set_defaults(func=run_unet)

    memory = benches.add_parser("memory", help="peak memory of the whole pipeline for a short and a long video",
                                description="Outpaint synthetic videos of each length with a model (default: a "
                                            "random tiny one) in fresh processes and compare the peak memory.")
    memory.add_argument("--frames", default="100,1000", help="comma-separated video lengths (default 100,1000)")
    memory.add_argument("--model", default="tiny", help="'tiny' (random) or a pipeline folder")
    memory.add_argument("--source-size", default="320x240", help="WxH of the synthetic video")
    memory.add_argument("--ratio", default="16:9", help="target aspect ratio")
    memory.add_argument("--size", type=int, help="working long side (default: the model's)")
    memory.add_argument("--steps", type=int, default=1, help="denoising steps (few: memory does not depend on them)")
    memory.add_argument("--limit", type=float, default=1.2, help="allowed peak ratio longest / shortest")
    _common(memory)
    memory.set_defaults(func=run_memory)

    official = benches.add_parser(
        "official", help="the official configuration against ours, and each lever alone",
        description="Outpaint the same video (16:9 -> 9:16 by default) with the official driver's configuration "
                    "(4 branches, per-window re-encoding, square canvas, one window per call, naive attention, "
                    "PNDM 50) and with ours; report UNet rows, FLOPs, wall time and peak memory per output frame.")
    official.add_argument("--model", default="tiny", help="'tiny' (random) or a pipeline folder")
    official.add_argument("--input", help="a video file or frame folder (default: a synthetic 16:9 clip)")
    official.add_argument("--frames", type=int, default=64, help="frames to outpaint (default 64)")
    official.add_argument("--source-size", default="128x72", help="WxH of the synthetic clip (default 128x72)")
    official.add_argument("--ratio", default="9:16", help="target aspect ratio (default 9:16)")
    official.add_argument("--size", type=int, default=88, help="working long side (default 88: a 48x88 9:16 canvas)")
    official.add_argument("--seed", type=int, default=0)
    official.add_argument("--steps-scale", type=float, default=0.2,
                          help="multiply every configuration's steps (official PNDM 50, dpmpp lever 25, ours: the "
                               "model's default) by this, for a shorter CPU run; FLOP and row ratios do not change. "
                               "Default 0.2 (10 / 5 / 5 steps); 1 = the full configurations")
    official.add_argument("--official-steps", type=int, help="PNDM steps of the official config (overrides)")
    official.add_argument("--fast-steps", type=int, help="dpmpp steps of the scheduler lever (overrides)")
    official.add_argument("--ours-steps", type=int, help="steps of ours (overrides)")
    official.add_argument("--no-levers", action="store_true", help="only official and ours")
    official.add_argument("--repeats", type=int, default=1, help="timed runs per configuration (median)")
    _common(official)
    official.set_defaults(func=run_official)

    schedulers = benches.add_parser(
        "schedulers", help="fewer DPM-Solver++ steps at equal quality? each scheduler:steps against PNDM 50",
        description="Cut a border off each video in DATA (as m3ddm evaluate does), outpaint it back with every "
                    "scheduler:steps configuration and the reference, and report per output frame: UNet calls, "
                    "wall time, region PSNR / SSIM / warp error against the ground truth, the PSNR change from "
                    "the reference, the PSNR against the reference's output, and whether the quality is equal "
                    "(PSNR within --tolerance-db, warp error within 5%).")
    schedulers.add_argument("--data", required=True, metavar="DIR", help="folder of videos or frame sequences")
    schedulers.add_argument("--model", metavar="MODEL_DIR", help="pipeline folder (default: the shipped model)")
    schedulers.add_argument("--configs", default="pndm:50,dpmpp:10,dpmpp:15,dpmpp:20,dpmpp:25,ddim:20",
                            help="comma-separated SCHEDULER:STEPS (default pndm:50,dpmpp:10,dpmpp:15,dpmpp:20,"
                                 "dpmpp:25,ddim:20)")
    schedulers.add_argument("--reference", default="pndm:50",
                            help="SCHEDULER:STEPS everything is compared with; always run first (default pndm:50)")
    schedulers.add_argument("--ratio", type=float, default=0.25, help="fraction of the width/height removed "
                                                                      "(default 0.25)")
    schedulers.add_argument("--direction", default="horizontal",
                            choices=("horizontal", "vertical", "all", "left", "right", "top", "bottom"))
    schedulers.add_argument("--max-frames", type=int, metavar="N", help="use at most the first N frames per clip")
    schedulers.add_argument("--size", type=int, metavar="S", help="resize clips so the short side is S pixels")
    schedulers.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="extra keyword for the pipeline, e.g. strength=1 (repeatable; YAML values)")
    schedulers.add_argument("--tolerance-db", type=float, default=0.1,
                            help="equal quality allows this much less region PSNR than the reference (default 0.1)")
    schedulers.add_argument("--seed", type=int, default=0)
    schedulers.add_argument("--device", help="torch device for the model (default: where it loads, the CPU)")
    schedulers.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    schedulers.add_argument("--json", action="store_true", help="print the results as JSON")
    schedulers.set_defaults(func=run_schedulers)

    stages = benches.add_parser(
        "stages", help="one outpaint's time split by stage, against the 180 s budget",
        description="Outpaint a synthetic video (default: 300 frames, 320x240, to 9:16) with a model (default: the "
                    "shipped one) at its defaults: the run a user gets, timed whole (median of --repeats), then one "
                    "run with the stages one after another, split by stage (read, canvas + pre-fill, VAE encode, "
                    "UNet, VAE decode, compose, border stages, write). Issue 12's budget: at most 180 s on a quiet "
                    "2-core CPU.")
    stages.add_argument("--model", metavar="MODEL_DIR", help="pipeline folder (default: the shipped model)")
    stages.add_argument("--frames", type=int, default=300)
    stages.add_argument("--source-size", default="320x240", help="WxH of the synthetic video")
    stages.add_argument("--ratio", default="9:16", help="target aspect ratio")
    stages.add_argument("--repeats", type=int, default=1)
    stages.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    stages.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    stages.add_argument("--json", action="store_true", help="print the results as JSON")
    stages.set_defaults(func=run_stages)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process (quicker; memory figures less exact)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _print_json(result) -> None:
    from m3ddm.evaluation.report import json_safe

    print(json.dumps(json_safe(result), allow_nan=False))


def run_unet(args: argparse.Namespace) -> int:
    from m3ddm.benchmarks.table import format_table
    from m3ddm.benchmarks.unet import COLUMNS, bench_unet, table_rows

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    results = bench_unet(presets, isolated=not args.in_process, frames=args.frames, latent=args.latent,
                         batch=args.batch, repeats=args.repeats, device=args.device, dtype=args.dtype,
                         threads=args.threads, attention=args.attention, channels_last=args.channels_last,
                         compile=args.compile)
    if args.json:
        _print_json({"results": results})
        return 0
    first = results[0]
    print(f"UNet forward: batch {args.batch} x {args.frames} frames x {args.latent}x{args.latent} latents, "
          f"16 global frames; {first['device']} {args.dtype}, {first['threads']} threads, {args.attention}"
          f"{', channels-last' if args.channels_last else ''}{', compiled' if args.compile else ''}; "
          f"median of {args.repeats} after a warm-up call ({first['first_call_s']:.1f} s)")
    print(format_table(table_rows(results), COLUMNS))
    print(f"memory: {first['memory_kind']}; growth = peak during the calls minus the size before them")
    return 0


def run_memory(args: argparse.Namespace) -> int:
    from m3ddm.benchmarks.memory import COLUMNS, bench_memory
    from m3ddm.benchmarks.table import format_table

    result = bench_memory(parse_int_list(args.frames, "--frames"), model=args.model,
                          source_size=_source_size(args), ratio=parse_ratio(args.ratio), size=args.size,
                          steps=args.steps, device=args.device, threads=args.threads,
                          isolated=not args.in_process, limit=args.limit)
    if args.json:
        _print_json(result)
        return 0
    print(f"whole pipeline (outpaint_video), {args.source_size} -> {args.ratio}, {args.steps} step(s), "
          f"model {args.model}, {'fresh process per run' if not args.in_process else 'in process'}")
    print(format_table(result["runs"], COLUMNS))
    growth = "n/a" if result["ratio_growth"] is None else f"{result['ratio_growth']:.3g}"
    verdict = "within" if result["within_limit"] else "ABOVE"
    print(f"peak ratio longest/shortest: {result['ratio_peak']:.3f} ({verdict} the {args.limit}x limit); "
          f"growth ratio: {growth}")
    return 0


def run_official(args: argparse.Namespace) -> int:
    from m3ddm.benchmarks.official import (
        CONFIG_COLUMNS,
        LEVER_COLUMNS,
        bench_official,
        config_rows,
        lever_rows,
        summary_lines,
    )
    from m3ddm.benchmarks.table import format_table

    def progress(name: str, result: dict) -> None:
        if not args.json:
            print(f"  {name}: {result['wall_s']:.1f} s", file=sys.stderr, flush=True)

    report = bench_official(
        model=args.model, input_path=args.input, frames=args.frames, source_size=_source_size(args),
        ratio=parse_ratio(args.ratio), size=args.size, seed=args.seed, steps_scale=args.steps_scale,
        official_steps=args.official_steps,
        fast_steps=args.fast_steps, ours_steps=args.ours_steps, with_levers=not args.no_levers,
        repeats=args.repeats, device=args.device, threads=args.threads, isolated=not args.in_process,
        on_result=progress,
    )
    if args.json:
        _print_json(report)
        return 0
    source = args.input or f"synthetic {args.source_size}"
    overridden = None not in (args.official_steps, args.fast_steps, args.ours_steps)
    scaled = "" if args.steps_scale == 1 or overridden else \
        f", steps x{args.steps_scale} of pndm 50 / dpmpp 25 / the model's default"
    print(f"{report['official']['frames']} frames of {source} -> {args.ratio}, size {args.size}, model {args.model}"
          f"{scaled}")
    print(format_table(config_rows(report), CONFIG_COLUMNS))
    for line in summary_lines(report):
        print(line)
    if report["levers"]:
        print()
        print(format_table(lever_rows(report), LEVER_COLUMNS))
    return 0


def run_schedulers(args: argparse.Namespace) -> int:
    from m3ddm.benchmarks.schedulers import COLUMNS, bench_schedulers, header_line, summary_lines, table_rows
    from m3ddm.benchmarks.table import format_table
    from m3ddm.commands.evaluate import parse_options

    report = bench_schedulers(
        args.data, model=args.model, configs=args.configs, reference=args.reference, ratio=args.ratio,
        direction=args.direction, max_frames=args.max_frames, size=args.size, options=parse_options(args.option),
        tolerance_db=args.tolerance_db, seed=args.seed, threads=args.threads, device=args.device,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.json:
        _print_json(report)
        return 0
    print(header_line(report))
    print(format_table(table_rows(report), COLUMNS))
    for line in summary_lines(report):
        print(line)
    return 0


def run_stages(args: argparse.Namespace) -> int:
    from m3ddm.benchmarks.stages import bench_stages
    from m3ddm.benchmarks.table import format_table

    result = bench_stages(model=args.model, frames=args.frames, source_size=_source_size(args),
                          ratio=parse_ratio(args.ratio), repeats=args.repeats, threads=args.threads,
                          device=args.device)
    if args.json:
        _print_json(result)
        return 0
    print(f"{result['frames']} frames {args.source_size} -> {args.ratio} ({result['output']}), {result['model']}, "
          f"{result['windows']} windows, {result['unet_calls']} UNet calls, {result['threads']} threads on "
          f"{result['device']} (model loaded in {result['load_s']:.1f} s, not counted)")
    print(format_table(result["stages"], (("stage", "stage", ""), ("seconds", "seconds", ".1f"),
                                          ("share", "share", ".0%"))))
    verdict = "within" if result["within_budget"] else "OVER"
    runs = ", ".join(f"{s:.1f}" for s in result["walls_s"])
    print(f"the user's run (reading and writing in the background): {result['wall_s']:.1f} s (median of {runs}); "
          f"{verdict} the {result['budget_s']:.0f} s budget")
    return 0

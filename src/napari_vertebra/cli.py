"""The ``napari-vertebra`` command line.

Subcommands:
  phantom   write synthetic spine phantoms with exact ground truth
  measure   levels, landmarks, heights, VCR/VC and Genant grade from a label map
  analyze   segment an image, then level and measure it (labels, table, landmarks, summary)
  batch     analyze every study in a folder (resumable, parallel with Dask, reports, DICOM)
  train     train a vertebral-body model (phantoms, projections of CTs, folders, VerSe)
  info      print the geometry napari-vertebra reads from a file or DICOM folder
  view      open files (or a bundled sample) in napari with the plugin
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .core.io import SpineIOError


def _phantom(args: argparse.Namespace) -> int:
    from .core.phantom import generate_phantoms

    def progress(done: int, total: int) -> None:
        print(
            f"\rphantom {done}/{total}",
            end="" if done < total else "\n",
            file=sys.stderr,
            flush=True,
        )

    options = {}
    if args.spacing is not None:
        options["spacing"] = args.spacing
    if args.grade is not None:
        options["grade"] = args.grade
    if args.fracture_type is not None:
        options["fracture_type"] = args.fracture_type
    if args.fracture_rate is not None:
        options["fracture_rate"] = args.fracture_rate
    if args.surroundings is not None:
        options["surroundings"] = args.surroundings
    written = generate_phantoms(
        args.modality,
        args.n,
        args.seed,
        args.output,
        overwrite=args.overwrite,
        progress=progress,
        **options,
    )
    print(f"wrote {len(written)} cases to {args.output}")
    return 0


def _add_level_options(parser: argparse.ArgumentParser) -> None:
    """Level and grading options of ``measure``, ``analyze`` and ``batch`` (unset ones come
    from ``--pipeline`` or the defaults)."""
    quiet = argparse.SUPPRESS
    parser.add_argument(
        "--top-level", default=quiet, help="level of the most cranial body, e.g. T11"
    )
    parser.add_argument(
        "--anchor", default=quiet, help="INDEX:LEVEL, e.g. 3:L1 (the third body from the top is L1)"
    )
    parser.add_argument("--shift", type=int, default=quiet, help="shift all levels by K")
    parser.add_argument(
        "--lumbar-count", type=int, default=quiet, choices=(4, 5, 6), help="default 5"
    )
    parser.add_argument(
        "--thoracic-count", type=int, default=quiet, choices=(11, 12, 13), help="default 12"
    )
    parser.add_argument(
        "--no-ribs",
        dest="count_from_ribs",
        action="store_false",
        default=quiet,
        help="CT: do not count levels from the ribs (nor check the sacrum's count against them)",
    )
    parser.add_argument(
        "--grade-thresholds",
        default=quiet,
        help="height losses (percent) where Genant grades 1, 2 and 3 begin (default 20,25,40)",
    )


def _measure(args: argparse.Namespace) -> int:
    from .core.measure import measure, write_measurement

    result = measure(
        args.labels,
        image=args.image,
        spacing=args.spacing,
        scheme=args.scheme,
        body_mask=args.body_mask,
        whole_vertebrae=args.whole_vertebrae or None,
        **_settings(args).measure_options(),
    )
    paths = write_measurement(result, args.output, overwrite=args.overwrite)
    _print_rows(result.table)
    print(f"wrote {paths['measurements']} and {paths['landmarks']}")
    return 0


def _print_rows(table) -> None:
    import pandas as pd

    for _, row in table.iterrows():
        grade = "-" if pd.isna(row["genant_grade"]) else int(row["genant_grade"])
        print(
            f"{row['level']:>4}  AVH {row['anterior_height_mm']:6.1f}  MVH "
            f"{row['middle_height_mm']:6.1f}  PVH {row['posterior_height_mm']:6.1f} mm  "
            f"grade {grade} {row['fracture_type']:<9} "
            f"{row['qc_flags']}"
        )


def _settings(args: argparse.Namespace):
    """Analysis settings: the ``--pipeline`` file's, then every option given on the line."""
    from .core.pipeline_file import (
        PipelineSettings,
        load_pipeline,
        parse_anchor,
        parse_percentages,
    )

    pipeline = getattr(args, "pipeline", None)
    settings = load_pipeline(pipeline) if pipeline else PipelineSettings()
    if pipeline:
        settings.check_models(source=pipeline)
    given = {
        name: getattr(args, name)
        for name in (
            "model",
            "device",
            "tta",
            "spacing",
            "fracture_classifier",
            "top_level",
            "shift",
            "lumbar_count",
            "thoracic_count",
            "count_from_ribs",
        )
        if hasattr(args, name)
    }
    if hasattr(args, "anchor"):
        given["anchor"] = parse_anchor(args.anchor)
    if hasattr(args, "grade_thresholds"):
        given["grade_thresholds"] = parse_percentages(args.grade_thresholds)
    return settings.replace(**given)


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``analyze`` and ``batch``; unset ones come from ``--pipeline`` or defaults."""
    quiet = argparse.SUPPRESS
    parser.add_argument(
        "--pipeline",
        default=None,
        help="pipeline file (YAML or JSON) with every analysis setting; options given here "
        "override it",
    )
    parser.add_argument(
        "--model",
        default=quiet,
        help="model name or path to a model card/weights; 'ct-baseline' for the non-learned "
        "CT method (default auto: CT baseline for CT, the installed radiograph model otherwise)",
    )
    parser.add_argument(
        "--device",
        default=quiet,
        help="auto (CUDA, then MPS, then CPU; default), cpu, cuda, cuda:N, mps",
    )
    parser.add_argument(
        "--tta", action="store_true", default=quiet, help="flip test-time augmentation"
    )
    parser.add_argument(
        "--fracture-classifier",
        default=quiet,
        help="seed 003 per-vertebra classifier: auto (an installed one for the modality; "
        "default), a model name or card, or none",
    )
    parser.add_argument("--spacing", type=float, default=quiet, help="pixel spacing in mm")
    _add_level_options(parser)


def _analyze(args: argparse.Namespace) -> int:
    from .core.pipeline import analyze
    from .core.pipeline_file import save_pipeline

    settings = _settings(args)

    def progress(stage: str, fraction: float) -> None:
        print(f"\r{stage} {100 * fraction:3.0f} %", end="", file=sys.stderr, flush=True)

    result = analyze(args.input, progress=progress, **settings.analyze_options())
    print(file=sys.stderr)
    paths = result.write(args.output, overwrite=args.overwrite)
    if args.report:
        from .core.report import write_report

        paths.update(write_report(result, args.output))
    if args.dicom:
        from .core.io.dicom_export import write_dicom_exports

        paths.update(write_dicom_exports(result, args.output))
    if args.save_pipeline:
        paths["pipeline"] = save_pipeline(settings.with_model_hashes(), args.save_pipeline)
    _print_rows(result.table)
    seconds = result.summary["timings_s"]["total_s"]
    print(f"model {result.summary['model']['name']} on {result.summary['device']}, {seconds:.1f} s")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .core.batch import run_batch

    settings = _settings(args)
    bar = None

    def progress(done: int, total: int, failed: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="studies", unit="study", file=sys.stderr)
        bar.set_postfix(failed=failed, refresh=False)
        bar.update(done - bar.n)

    summary = run_batch(
        args.input_dir,
        args.output_dir,
        settings,
        workers=args.workers,
        scheduler=args.scheduler,
        report=not args.no_report,
        dicom=not args.no_dicom,
        exclude=tuple(args.exclude or ()),
        progress=progress,
    )
    if bar is not None:
        bar.close()
    print(
        f"{summary.studies} studies: {summary.skipped} already done, {summary.finished} "
        f"analysed, {len(summary.failed)} failed ({summary.seconds:.1f} s)"
    )
    for record in summary.failed:
        print(f"  failed {record['study']}: {record['error']}")
    print(f"wrote {summary.measurements_path} and {summary.failures_path}")
    return 0 if not summary.failed else 3


def _train(args: argparse.Namespace) -> int:
    import shlex

    from .core.train import TrainConfig, train

    config_fields = dict(
        name=args.name,
        output=args.output,
        data=args.data,
        validation=args.validation,
        modality=args.modality.upper(),
        architecture=args.architecture,
        context=args.context,
        steps=args.steps,
        batch_size=args.batch_size,
        patch=args.patch,
        learning_rate=args.learning_rate,
        evaluate_every=args.evaluate_every,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        init_from=args.init_from,
        description=args.description,
        command="napari-vertebra " + shlex.join(args.command_line),
    )
    for option in ("arguments", "augmentation", "preprocessing"):
        text = getattr(args, option)
        if text:
            try:
                config_fields[option] = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"--{option} is not valid JSON ({err}): {text}") from err
    bar = None

    def progress(what: str, done: int, total: int) -> None:
        nonlocal bar
        from tqdm import tqdm

        if bar is None or bar.desc != what:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total or None, desc=what, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    card = train(TrainConfig(**config_fields), progress=progress, resume=args.resume)
    if bar is not None:
        bar.close()
    figures = {
        k: v for k, v in card.validation.items() if k.endswith(("model_grid", "per_vertebra"))
    }
    print(f"wrote {card.path} and {card.weights_path}; validation {figures}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from .core.io import read_images

    for image in read_images(args.path):
        info = {
            "modality": image.modality,
            "kind": image.kind,
            "shape": list(image.shape),
            "dtype": str(image.array.dtype),
            "spacing_mm": list(image.spacing) if image.spacing else None,
            "axis_codes": list(image.axis_codes) if image.axis_codes else None,
            "origin_mm": [round(v, 3) for v in image.origin],
            "intensity_range": [float(image.array.min()), float(image.array.max())],
            "source": image.source,
        }
        print(json.dumps(info, indent=1, default=str))
    return 0


def _has_display() -> bool:
    """False on Linux without X11/Wayland, where Qt would abort the process instead of raising."""
    if not sys.platform.startswith("linux"):
        return True
    env = os.environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"))


def _view(args: argparse.Namespace) -> int:
    if not _has_display():
        print(
            "no display found (DISPLAY is not set): napari needs a screen. Use "
            "'napari-vertebra info PATH' to inspect a file, or run under 'xvfb-run -a'.",
            file=sys.stderr,
        )
        return 2
    try:
        import napari
    except ImportError:
        print(
            "napari is not installed; install the GUI with: pip install 'napari-vertebra[all]'",
            file=sys.stderr,
        )
        return 2
    try:
        viewer = napari.Viewer()
    except Exception as err:  # no display, no Qt binding: say so plainly
        print(
            f"cannot open a napari window ({type(err).__name__}: {err}); on a machine without a "
            "display use 'napari-vertebra info' or run under xvfb-run",
            file=sys.stderr,
        )
        return 2
    if args.sample:
        viewer.open_sample("napari-vertebra", args.sample)
    for path in args.paths:
        viewer.open(path, plugin="napari-vertebra")
    if not args.no_block:
        napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-vertebra",
        description="Find, label and measure vertebrae on spine radiographs and CT.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    phantom = sub.add_parser("phantom", help="write synthetic spine phantoms with ground truth")
    phantom.add_argument(
        "--modality",
        choices=("xr", "ct"),
        required=True,
        help="xr: lateral radiograph (2D); ct: CT volume (3D)",
    )
    phantom.add_argument("--n", type=int, default=1, help="number of cases (default 1)")
    phantom.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    phantom.add_argument("-o", "--output", required=True, help="output folder")
    phantom.add_argument(
        "--spacing",
        type=float,
        default=None,
        help="pixel/voxel spacing in mm (default: random, realistic)",
    )
    phantom.add_argument(
        "--grade",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="Genant grade of every random fracture",
    )
    phantom.add_argument("--fracture-type", choices=("wedge", "biconcave", "crush"), default=None)
    phantom.add_argument(
        "--fracture-rate",
        type=float,
        default=None,
        help="probability that a body is fractured (default 0.2)",
    )
    phantom.add_argument(
        "--surroundings",
        choices=("spine", "abdomen"),
        default=None,
        help="CT only: spine (tight field of view, default) or abdomen (the whole trunk with "
        "bowel gas, ribs and pelvis, 1.5-3 mm voxels)",
    )
    phantom.add_argument("--overwrite", action="store_true", help="replace existing case folders")
    phantom.set_defaults(func=_phantom)

    meas = sub.add_parser("measure", help="levels, heights, VCR and Genant grade from labels")
    meas.add_argument("labels", help="label map (NIfTI, DICOM …) of vertebral bodies or vertebrae")
    meas.add_argument("--image", default=None, help="image the labels belong to (for spacing)")
    meas.add_argument("--scheme", choices=("verse", "totalsegmentator"), default="verse")
    meas.add_argument("-o", "--output", required=True, help="output folder")
    meas.add_argument("--spacing", type=float, default=None, help="pixel spacing in mm")
    meas.add_argument(
        "--pipeline",
        default=None,
        help="pipeline file whose level and grading settings to use (options given override)",
    )
    meas.add_argument(
        "--body-mask",
        default=None,
        help="mask whose value 1 marks vertebral bodies (levels from LABELS)",
    )
    meas.add_argument(
        "--whole-vertebrae",
        action="store_true",
        help="labels include posterior elements: cut them off first",
    )
    _add_level_options(meas)
    meas.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    meas.set_defaults(func=_measure)

    ana = sub.add_parser("analyze", help="segment, level and measure a radiograph or CT")
    ana.add_argument("input", help="image: DICOM file or series folder, NIfTI, PNG/TIFF")
    ana.add_argument("-o", "--output", required=True, help="output folder")
    _add_analysis_options(ana)
    ana.add_argument(
        "--report", action="store_true", help="also write report.html and overview.png"
    )
    ana.add_argument(
        "--dicom",
        action="store_true",
        help="also write DICOM SEG (seg.dcm) and SR (sr.dcm) referencing the DICOM input",
    )
    ana.add_argument(
        "--save-pipeline",
        default=None,
        metavar="FILE",
        help="save the settings used (with the models' card hashes) as a pipeline file",
    )
    ana.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    ana.set_defaults(func=_analyze)

    bat = sub.add_parser(
        "batch",
        help="analyse every study in a folder (resumable, parallel with Dask)",
        description="Finds studies under INPUT_DIR (DICOM series folders, DICOM files, NIfTI, "
        "PNG/JPEG/TIFF), analyses each into OUTPUT_DIR/<study>/ as analyze does (with "
        "report.html, overview.png, and seg.dcm + sr.dcm for DICOM input), and writes "
        "OUTPUT_DIR/measurements.csv (with a study column), failures.csv, manifest.json and "
        "pipeline.yaml. Running the same command again skips finished studies. Exit status 3 "
        "when a study failed.",
    )
    bat.add_argument("input_dir", help="folder of studies (searched recursively; never modified)")
    bat.add_argument("output_dir", help="results folder")
    bat.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local Dask worker processes (default 1; 0 runs in this process)",
    )
    bat.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a dask.distributed scheduler (tcp://host:8786) to run on instead",
    )
    _add_analysis_options(bat)
    bat.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="files that are not studies, e.g. '*labels*' (repeatable)",
    )
    bat.add_argument("--no-report", action="store_true", help="skip report.html/overview.png")
    bat.add_argument("--no-dicom", action="store_true", help="skip DICOM SEG and SR")
    bat.set_defaults(func=_batch)

    tr = sub.add_parser(
        "train",
        help="train a vertebral-body segmentation model",
        description="Data specs: phantom-xr:N, phantom-ct:N, phantom-ct-abdomen:N, "
        "folder:PATH (images/ + masks/), totalseg:PATH (the same with TotalSegmentator "
        "class maps as masks), verse:PATH (VerSe CT + vertebra masks), "
        "drr:SPEC[@K] (K lateral projections of each CT of another spec, e.g. "
        "drr:phantom-ct:20@2). Writes config.json, metrics.csv, "
        "curves.png, checkpoint.pt and NAME.safetensors + NAME.json into the output folder.",
    )
    tr.add_argument("-o", "--output", required=True, help="run folder (new, or --resume)")
    tr.add_argument("--name", required=True, help="model name (file names of weights and card)")
    tr.add_argument("--data", action="append", required=True, help="training data spec")
    tr.add_argument("--validation", action="append", required=True, help="held-out data spec")
    tr.add_argument("--modality", default="XR", choices=("XR", "CT", "xr", "ct"))
    tr.add_argument(
        "--architecture",
        default=None,
        help="unet (default), multitask_unet (seed 004: region and fracture heads), r2unet, "
        "mdr2unet, or slice_classifier (seed 003); with --init-from, the model's own",
    )
    tr.add_argument("--arguments", default=None, help="network arguments as JSON")
    tr.add_argument(
        "--augmentation",
        default=None,
        help="augmentation strengths as JSON, e.g. '{\"coarsen\": 2.5}' (rotation_deg, scale, "
        "elastic_px, flip_ap, gamma, contrast, blur_px, noise, coarsen)",
    )
    tr.add_argument(
        "--preprocessing",
        default=None,
        help='preprocessing steps as a JSON list, e.g. \'[{"op": "resample", '
        '"target_spacing": [0.8, 0.8]}, {"op": "subtract_background", "sigma_mm": 20}, '
        '{"op": "zscore"}]\'; with --init-from they replace the model\'s own',
    )
    tr.add_argument("--context", type=int, default=0, help="CT: neighbouring slices per side")
    tr.add_argument("--steps", type=int, default=1000)
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--patch", type=int, default=256, help="training crop size (pixels)")
    tr.add_argument("--learning-rate", type=float, default=1e-3)
    tr.add_argument("--evaluate-every", type=int, default=100, help="steps between validations")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    tr.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that render the phantoms and draw the batches (default 1; the same "
        "pairs and batches whatever the number)",
    )
    tr.add_argument("--init-from", default=None, help="model name or card to fine-tune")
    tr.add_argument("--description", default="", help="text for the model card")
    tr.add_argument("--resume", action="store_true", help="continue the run in the folder")
    tr.set_defaults(func=_train)

    info = sub.add_parser("info", help="print what napari-vertebra reads from a file or folder")
    info.add_argument("path")
    info.set_defaults(func=_info)

    view = sub.add_parser("view", help="open files or a bundled sample in napari")
    view.add_argument("paths", nargs="*")
    view.add_argument(
        "--sample",
        choices=("lumbar-ct", "radiograph", "ct"),
        default=None,
        help="open a bundled sample",
    )
    view.add_argument("--no-block", action="store_true", help=argparse.SUPPRESS)
    view.set_defaults(func=_view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-vertebra`` command."""
    args = build_parser().parse_args(argv)
    # As typed, for the records that name the command that made them (model cards).
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (SpineIOError, ValueError, KeyError, FileExistsError, FileNotFoundError) as err:
        print(f"napari-vertebra {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

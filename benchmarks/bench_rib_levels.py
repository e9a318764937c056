"""Level counting from the ribs on CT: whole-trunk phantoms and the real lumbar CT.

Each whole-trunk CT phantom (ribs, pelvis, bowel, table; ``surroundings="abdomen"``) is
measured from its body labels painted with one value, so that the levels must be counted,
twice: as generated (the sacrum in view in 52 of the 60 default phantoms) and with the field of
view cut just above the last lumbar body, so that no sacrum is in view. Each is counted with the
ribs and without (``count_from_ribs=False``: the count then assumes the last body is L5).
Prints the share of vertebrae with the right level, of phantoms with every level right and of
phantoms flagged uncertain, the phantoms counted wrong with the ribs, and the time the rib
search takes. The real lumbar CT of ``../shared/data`` (T12-S1, TotalSegmentator's body mask
painted with one value) is counted the same way, whole and cut above L4. Last, the rib search's
time and peak memory (tracemalloc) on three whole-trunk phantoms at 1.0 x 0.7 x 0.7 mm, the
voxel size of a diagnostic CT (about 70 million voxels each), and whether their votes are right.

``--surroundings spine`` counts spine CT phantoms instead (130-220 mm across, ribs' necks and
iliac wings in view, no trunk); ``--no-real`` leaves out the real CT and the fine CTs.

Run: python benchmarks/bench_rib_levels.py [--phantoms 60] [--seed 5000]
         [--surroundings abdomen|spine] [--no-real]
"""

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_vertebra import make_phantom, read_image
from napari_vertebra.core.image import SpineImage
from napari_vertebra.core.instances import extract_instances
from napari_vertebra.core.labels import level_id, level_name, to_verse
from napari_vertebra.core.measure import measure
from napari_vertebra.core.ribs import rib_bearing


def cut_above(image: SpineImage, labels: np.ndarray, level: str):
    """The CT and labels cut at the first slice of ``level``'s body (that body and all below
    it out of view)."""
    stop = int(np.nonzero((labels == level_id(level)).any(axis=(1, 2)))[0].min())
    cut = SpineImage(
        np.ascontiguousarray(image.array[:stop]), image.spacing, "CT", origin=image.origin
    )
    return cut, labels[:stop]


def count(image: SpineImage, labels: np.ndarray, ribs: bool) -> tuple[list[str], bool]:
    """Levels counted on ``labels`` painted with one value, and whether any is uncertain."""
    semantic = image.with_array((labels > 0).astype(np.uint8), kind="labels")
    table = measure(semantic, image=image, count_from_ribs=ribs).table
    return table["level"].tolist(), bool(table["qc_flags"].str.contains("level_uncertain").any())


def expected_levels(labels: np.ndarray) -> list[str]:
    """True level names of ``labels`` (VerSe IDs), cranial to caudal."""
    order = sorted(
        (float(np.nonzero(labels == v)[0].mean()), int(v)) for v in np.unique(labels) if v
    )
    return [level_name(v) for _, v in order]


def rib_seconds(image: SpineImage, labels: np.ndarray) -> float:
    instances = extract_instances(labels, np.array(image.spacing), np.array(image.origin))
    bodies = [i for i in instances if not i.is_sacrum]
    start = time.perf_counter()
    rib_bearing(image.array, image.spacing, image.origin, bodies)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phantoms", type=int, default=60)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument(
        "--surroundings",
        choices=("abdomen", "spine"),
        default="abdomen",
        help="whole-trunk phantoms (default) or spine CTs (130-220 mm across)",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real CT and fine CTs")
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    args = parser.parse_args()
    results = {
        (case, ribs): {"right": 0, "total": 0, "cases": 0, "all": 0, "uncertain": 0}
        for case in ("as generated", "no sacrum in view")
        for ribs in (True, False)
    }
    seconds, failures = [], []
    for seed in range(args.seed, args.seed + args.phantoms):
        phantom = make_phantom("ct", seed, surroundings=args.surroundings)
        labels = phantom.labels.array
        last_lumbar = phantom.truth["vertebrae"][-1]["level"]
        cases = {"as generated": (phantom.image, labels)}
        if len(phantom.truth["vertebrae"]) >= 4:
            cases["no sacrum in view"] = cut_above(phantom.image, labels, last_lumbar)
        for case, (image, case_labels) in cases.items():
            truth = expected_levels(case_labels)
            # A body cut by the field at the bottom keeps its level (it is still counted).
            for ribs in (True, False):
                found, uncertain = count(image, case_labels, ribs)
                tally = results[(case, ribs)]
                tally["cases"] += 1
                tally["total"] += len(truth)
                tally["right"] += sum(a == b for a, b in zip(found, truth, strict=False))
                tally["all"] += found == truth
                tally["uncertain"] += uncertain
                if ribs and found != truth:
                    failures.append(
                        f"seed {seed}, {case}: {' '.join(truth)} counted as "
                        f"{' '.join(found)}{' (flagged uncertain)' if uncertain else ''}"
                    )
            seconds.append(rib_seconds(image, case_labels))
    for (case, ribs), tally in results.items():
        print(
            f"{case:>18}, {'with ribs   ' if ribs else 'without ribs'}: "
            f"vertebrae right {100 * tally['right'] / tally['total']:.1f} % "
            f"({tally['right']}/{tally['total']}), phantoms all right "
            f"{tally['all']}/{tally['cases']}, phantoms flagged uncertain {tally['uncertain']}"
        )
    print("\n".join(["with ribs, wrong:"] + failures))
    print(
        f"rib search: median {np.median(seconds):.3f} s, largest {np.max(seconds):.3f} s "
        f"per phantom ({len(seconds)} volumes)"
    )
    if args.no_real:
        return
    folder = args.data / "ct-lumbar-totalseg"
    ct = read_image(folder / "ct.nii.gz")
    verse = to_verse(
        read_image(folder / "labels_totalseg.nii.gz", kind="labels").array, "totalsegmentator"
    )
    body = read_image(folder / "body_disc_mask.nii.gz", kind="labels").array == 1
    bodies = np.where(body, verse, 0)
    for name, (image, case_labels) in {
        "real CT, whole (T11 fragment, T12-S1)": (ct, bodies),
        "real CT, cut above L4": cut_above(ct, bodies, "L4"),
    }.items():
        for ribs in (True, False):
            found, uncertain = count(image, case_labels, ribs)
            print(
                f"{name}, {'with ribs' if ribs else 'without ribs'}: {' '.join(found)}"
                f"{' (flagged uncertain)' if uncertain else ''}"
            )
    fine_ct_search()


def fine_ct_search() -> None:
    """Time and peak memory of the rib search on whole-trunk phantoms at 0.7 mm in-plane."""
    for seed in (5000, 5001, 5012):
        phantom = make_phantom("ct", seed, surroundings="abdomen", spacing=(1.0, 0.7, 0.7))
        image = phantom.image
        instances = extract_instances(
            phantom.labels.array, np.array(image.spacing), np.array(image.origin)
        )
        bodies = [i for i in instances if not i.is_sacrum]
        tracemalloc.start()
        start = time.perf_counter()
        votes = rib_bearing(image.array, image.spacing, image.origin, bodies).bodies
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        truth = [v["level"].startswith("T") for v in phantom.truth["vertebrae"]]
        right = all(v == t for v, t in zip(votes, truth, strict=True) if v is not None)
        print(
            f"seed {seed}, {' x '.join(map(str, image.shape))} voxels at 1.0 x 0.7 x 0.7 mm: "
            f"rib search {seconds:.2f} s, peak {peak:.0f} MiB, votes "
            f"{'right' if right else 'WRONG'} ({votes.count(None)} of {len(votes)} withheld)"
        )


if __name__ == "__main__":
    main()

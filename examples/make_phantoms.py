"""Generate phantoms with ground truth and print a vertebra's truth.

Run: python examples/make_phantoms.py OUT_DIR
"""

import sys

import napari_vertebra as nv

out = sys.argv[1] if len(sys.argv) > 1 else "phantoms"
phantom = nv.make_phantom(
    "xr", seed=1, levels=["T12", "L1", "L2", "L3", "L4", "L5"], fractures={"L2": (2, "crush")}
)
for v in phantom.truth["vertebrae"]:
    print(
        f"{v['level']:>4}: AVH {v['anterior_height_mm']:5.1f}  MVH {v['middle_height_mm']:5.1f}  "
        f"PVH {v['posterior_height_mm']:5.1f} mm  grade {v['genant_grade']} {v['fracture_type']}"
    )
paths = nv.generate_phantoms("ct", n=2, seed=0, out_dir=out, spacing=1.5)
print("wrote", *paths, sep="\n  ")

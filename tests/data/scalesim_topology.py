#!/usr/bin/env python3
"""Regenerate scalesim_topology.csv: SCALE-Sim v3.0.0's per-layer compute "Total Cycles" for
topology files (conv and GEMM), several array shapes, all three dataflows.

Not run by the test suite (tests only read the CSV). To regenerate, from the repository root:
    python3 -m venv /tmp/ss && /tmp/ss/bin/pip install scalesim 'numpy<2'
    /tmp/ss/bin/python tests/data/scalesim_topology.py > tests/data/scalesim_topology.csv
The topology files are the committed ones (TOPOLOGIES below), read by SCALE-Sim itself; a file
is a GEMM topology when its header starts with `Layer, M` (SCALE-Sim's `-i gemm`).
InterfaceBandwidth = CALC, so SCALE-Sim reports no stall cycles and Total Cycles is compute only.
One row per SCALE-Sim layer: a layer whose name contains `DP` (depthwise) is C layers of one
channel each, named `<name>Channel_<i>`.
"""
import contextlib
import csv
import io
import os
import sys
import tempfile

from scalesim.scale_sim import scalesim

TOPOLOGIES = [
    "tests/data/topology/conv_mix.csv",
    "tests/data/topology/gemm_mix.csv",
    "topologies/lenet.csv",
    "topologies/resnet_cifar_small.csv",
]

# (rows, cols): square, tall, wide, not a power of two.
ARRAYS = [(8, 8), (16, 4), (5, 12), (32, 32)]

# The same SCALE-Sim configuration as the GEMM vectors (the script beside this one).
from scalesim_cycles import CFG  # noqa: E402


def is_gemm(topo):
    with open(topo) as f:
        head = [h.strip().lower() for h in f.readline().split(",")]
    return head[:2] == ["layer", "m"]


def run(rows, cols, df, topo):
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "scale.cfg")
        layout = os.path.join(d, "layout.csv")
        with open(layout, "w") as f:  # unused (no custom layout) but SCALE-Sim opens it
            f.write("Layer,\n")
        with open(cfg, "w") as f:
            f.write(CFG.format(rows=rows, cols=cols, df=df))
        with contextlib.redirect_stdout(io.StringIO()):
            s = scalesim(save_disk_space=True, verbose=False, config=cfg,
                         topology=os.path.abspath(topo), layout=layout,
                         input_type_gemm=is_gemm(topo))
            s.run_scale(top_path=d)
        names = s.topo.get_layer_names()
        with open(os.path.join(d, "lpsim", "COMPUTE_REPORT.csv")) as f:
            table = list(csv.reader(f))
        head = [h.strip() for h in table[0]]
        out = []
        for row in table[1:]:
            rec = dict(zip(head, [v.strip() for v in row]))
            layer = int(rec["LayerID"])
            out.append([layer, names[layer], rec["Total Cycles"], rec["Stall Cycles"],
                        rec["Overall Util %"], rec["Mapping Efficiency %"],
                        rec["Compute Util %"]])
        return out


def main():
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["topology", "rows", "cols", "dataflow", "layer", "name", "total_cycles",
                  "stall_cycles", "overall_util_pct", "mapping_efficiency_pct",
                  "compute_util_pct"])
    for topo in TOPOLOGIES:
        for rows, cols in ARRAYS:
            for df in ("os", "ws", "is"):
                for rec in run(rows, cols, df, topo):
                    out.writerow([topo, rows, cols, df, *rec])
                sys.stdout.flush()


if __name__ == "__main__":
    main()

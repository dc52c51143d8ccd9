#!/usr/bin/env python3
"""Regenerate scalesim_cycles.csv: SCALE-Sim v3.0.0's compute "Total Cycles" for GEMMs.

Not run by the test suite (tests only read the CSV). To regenerate:
    python3 -m venv /tmp/ss && /tmp/ss/bin/pip install scalesim 'numpy<2'
    /tmp/ss/bin/python tests/data/scalesim_cycles.py > tests/data/scalesim_cycles.csv
InterfaceBandwidth = CALC, so SCALE-Sim reports no stall cycles and Total Cycles is compute only.
"""
import contextlib
import csv
import io
import os
import sys
import tempfile

from scalesim.scale_sim import scalesim

# (rows, cols, M, N, K): arrays that fold the GEMM evenly and unevenly, square and not.
CASES = [
    (32, 32, 64, 64, 64),
    (32, 32, 128, 256, 512),
    (8, 8, 16, 16, 16),
    (8, 8, 20, 13, 7),
    (8, 4, 5, 9, 30),
    (4, 8, 33, 17, 9),
    (16, 16, 100, 50, 70),
    (16, 8, 1, 1, 1),
    (4, 4, 3, 5, 2),
    (32, 16, 65, 31, 129),
]

CFG = """[general]
run_name = lpsim
[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 1024
FilterSramSzkB : 1024
OfmapSramSzkB : 1024
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks : 1
ReadRequestBuffer : 32
WriteRequestBuffer : 32
[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def run(rows, cols, df, m, n, k):
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "scale.cfg")
        topo = os.path.join(d, "gemm.csv")
        layout = os.path.join(d, "layout.csv")
        with open(layout, "w") as f:  # unused (no custom layout) but SCALE-Sim opens it
            f.write("Layer,\n")
        with open(cfg, "w") as f:
            f.write(CFG.format(rows=rows, cols=cols, df=df))
        with open(topo, "w") as f:
            f.write("Layer, M, N, K,\n")
            f.write(f"g, {m}, {n}, {k},\n")
        with contextlib.redirect_stdout(io.StringIO()):
            s = scalesim(save_disk_space=True, verbose=False, config=cfg,
                         topology=topo, layout=layout, input_type_gemm=True)
            s.run_scale(top_path=d)
        report = os.path.join(d, "lpsim", "COMPUTE_REPORT.csv")
        with open(report) as f:
            rows_ = list(csv.reader(f))
        head = [h.strip() for h in rows_[0]]
        vals = [v.strip() for v in rows_[1]]
        rec = dict(zip(head, vals))
        return rec["Total Cycles"], rec["Stall Cycles"], rec["Overall Util %"], rec["Mapping Efficiency %"]


def main():
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["rows", "cols", "dataflow", "m", "n", "k", "total_cycles", "stall_cycles",
                  "overall_util_pct", "mapping_efficiency_pct"])
    for rows, cols, m, n, k in CASES:
        for df in ("os", "ws", "is"):
            out.writerow([rows, cols, df, m, n, k, *run(rows, cols, df, m, n, k)])
            sys.stdout.flush()


if __name__ == "__main__":
    main()

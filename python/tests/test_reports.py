"""lpsim.cost, lpsim.run, lpsim.sweep and lpsim.from_json: the CLI's reports, as Python
objects, equal to the CLI's JSON; errors typed."""

import json

import numpy as np
import pytest

import lpsim
from conftest import cli, same


def test_from_json_rule():
    v = lpsim.from_json('{"a": [1, 2], "b": [1.5, null], "c": [], "d": [1, "x"], "e": null, '
                        '"f": [[1, 2], [3]], "g": 18446744073709551615}')
    assert v["a"].dtype == np.int64 and v["a"].tolist() == [1, 2]
    assert v["b"].dtype == np.float64 and np.isnan(v["b"][1])
    assert v["c"] == [] and v["d"] == [1, "x"] and v["e"] is None
    assert isinstance(v["f"], list) and v["f"][1].tolist() == [3]
    assert v["g"] == 2 ** 64 - 1
    with pytest.raises(lpsim.LpsimError):
        lpsim.from_json("{")


def test_cost_equals_cli(in_root):
    want = lpsim.from_json(cli("cost", "--arch", "arch/fp8.json", "--gemm", "64,32,16",
                               "--gemm", "8,8,8", "--set", "compute.array.rows=16",
                               "--set", "formats.weights=e5m2", "--json"))
    got = lpsim.cost("arch/fp8.json", [(64, 32, 16), (8, 8, 8)],
                     set={"compute.array.rows": 16, "arch.formats.weights": "e5m2"})
    same(got, want)
    one = lpsim.cost(in_root / "arch" / "int8.json", (128, 256, 512))
    same(one, lpsim.from_json(cli("cost", "--arch", "arch/int8.json", "--gemm", "128,256,512", "--json")))
    assert one["total"]["macs"] == 128 * 256 * 512


def test_cost_errors(in_root):
    with pytest.raises(lpsim.ArchError, match="cannot read"):
        lpsim.cost("arch/nope.json", (1, 1, 1))
    with pytest.raises(lpsim.ArchError, match="rows"):
        lpsim.cost("arch/fp8.json", (1, 1, 1), set={"compute.array.rows": 0})
    with pytest.raises(lpsim.ArchError, match="colums|columns|did you mean"):
        lpsim.cost("arch/fp8.json", (1, 1, 1), set={"compute.array.colums": 4})
    with pytest.raises(lpsim.CostError, match="three whole numbers"):
        lpsim.cost("arch/fp8.json", (0, 1, 1))
    with pytest.raises(lpsim.CostError, match="at least one"):
        lpsim.cost("arch/fp8.json", [])
    with pytest.raises(lpsim.ArchError, match="twice"):
        lpsim.cost("arch/fp8.json", (1, 1, 1), set={"compute.array.rows": 8, "arch.compute.array.rows": 8})


RUN = ("workloads/gaussian-toy.json", "lp-sgld-vc", "arch/int8.json")


def test_run_equals_cli(in_root, tmp_path):
    want = lpsim.from_json(cli("run", "--workload", RUN[0], "--algo", RUN[1], "--arch", RUN[2],
                               "--set", "epochs=2", "--set", "lr=0.003", "--seed", "4", "--quiet",
                               "--json", "--out", str(tmp_path / "cli")))
    got = lpsim.run(*RUN, seed=4, epochs=2, lr=0.003, out=tmp_path / "py")
    same(got, want)
    assert got["config"]["set"] == {"epochs": "2", "lr": "0.003"}
    same(lpsim.from_json((tmp_path / "py" / "report.json").read_text()), want)
    # arch fields through set=, as --set arch.PATH=VALUE
    d = lpsim.run("workloads/digits-logistic.json", "lp-sgd", "arch/bf16.json", epochs=1,
                  set={"arch.formats.weights": "e4m3fn"})
    assert d["config"]["formats"]["weights"] == "e4m3fn"


def test_run_threads_do_not_change_the_report(in_root):
    a = lpsim.run("workloads/digits-logistic.json", "lp-sgld-naive", "arch/bfp8.json", epochs=2,
                  burn_in=1, threads=1)
    b = lpsim.run("workloads/digits-logistic.json", "lp-sgld-naive", "arch/bfp8.json", epochs=2,
                  burn_in=1, threads=2)
    same(a, b)


def test_run_errors(in_root):
    with pytest.raises(lpsim.RunError, match="lp-sgld-vc"):
        lpsim.run(RUN[0], "lp-sgld-vcc", RUN[2])
    with pytest.raises(lpsim.RunError, match="lr"):
        lpsim.run(*RUN, lr=-1)
    with pytest.raises(lpsim.RunError, match="nope"):
        lpsim.run(*RUN, nope=1)
    with pytest.raises(lpsim.ArchError):
        lpsim.run(*RUN, set={"arch.formats.weights": "bf17"})
    with pytest.raises(lpsim.RunError, match="missing.json"):
        lpsim.run("workloads/missing.json", "sgd", RUN[2])
    with pytest.raises(lpsim.RunError, match="twice"):
        lpsim.run(*RUN, lr=0.1, set={"lr": 0.2})


def test_sweep_equals_cli(in_root, tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"name": "py-test", "workloads": ["workloads/gaussian-toy.json"],
                                "algos": ["sgld", "lp-sgld-vc"], "archs": ["arch/int8.json"],
                                "seeds": [0, 1], "set": {"epochs": [1], "burn_in": [100]}}))
    cli("sweep", str(spec), "--out", str(tmp_path / "cli"))
    got = lpsim.sweep(spec, out=tmp_path / "py", jobs=2)
    assert (got["ran"], got["reused"], got["failed"], got["incompatible"]) == (4, 0, 0, 0)
    same(got["results"], lpsim.from_json((tmp_path / "cli" / "results.json").read_text()))
    assert (tmp_path / "py" / "results.csv").read_bytes() == (tmp_path / "cli" / "results.csv").read_bytes()
    again = lpsim.sweep(spec, out=tmp_path / "py")
    assert (again["ran"], again["reused"]) == (0, 4)


def test_sweep_errors(in_root, tmp_path):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"name": "x", "workloads": ["workloads/gaussian-toy.json"],
                                "algos": ["sgdd"], "archs": ["arch/int8.json"]}))
    with pytest.raises(lpsim.SweepError, match="sgd"):
        lpsim.sweep(spec, out=tmp_path / "o")
    with pytest.raises(lpsim.SweepError):
        lpsim.sweep(tmp_path / "missing.json")

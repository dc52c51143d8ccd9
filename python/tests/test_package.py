"""The package's surface: every public name documented and typed in the stubs."""

import inspect
import re
from pathlib import Path

import lpsim


def test_every_public_name_has_a_docstring_and_a_stub():
    stub = (Path(lpsim.__file__).parent / "__init__.pyi").read_text()
    assert (Path(lpsim.__file__).parent / "py.typed").exists()
    for name in lpsim.__all__:
        obj = getattr(lpsim, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"
        assert re.search(rf"^(class|def) {name}\b", stub, re.M), f"{name} is not in __init__.pyi"
    for method in ("info", "encode", "decode"):
        assert inspect.getdoc(getattr(lpsim.Format, method)), method


def test_exceptions_form_one_hierarchy():
    for name in ("FormatError", "GemmError", "ArchError", "CostError", "RunError", "SweepError"):
        cls = getattr(lpsim, name)
        assert issubclass(cls, lpsim.LpsimError) and cls.__module__ == "lpsim"
    assert issubclass(lpsim.LpsimError, ValueError)

"""The public surface (docs/api.md): every family whole or not at all, the contract's names, docs in step."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil
import re

import numfmt as nf

API_PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"

# The names the design's public contract fixes (docs/design.md, "Public API contract").
CONTRACT = [
    "FloatFormat", "IntFormat", "get", "FP32", "FP16", "BF16", "TF32", "E4M3", "E5M2", "E4M3FNUZ", "E5M2FNUZ",
    "E3M2", "E2M3", "E2M1", "E8M0", "INT8", "INT4", "UINT8", "UINT4", "NF4", "encode", "decode", "quantize",
    "quantize_scaled", "mx_quantize", "QArray", "dequantize", "pack", "unpack", "qmatmul", "dot_general",
    "matmul_profile", "fake_quant", "quantize_grad", "analysis",
]


def _modules():
    for info in pkgutil.walk_packages(nf.__path__, "numfmt."):
        if info.name.endswith("__main__"):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional extra (matplotlib) that is not installed
            continue


def test_exported_names_resolve_once():
    assert len(nf.__all__) == len(set(nf.__all__))
    for name in nf.__all__:
        assert hasattr(nf, name), name


def test_the_contract_names_are_exported():
    assert set(CONTRACT) <= set(nf.__all__)
    assert callable(nf.analysis.error_stats) and callable(nf.analysis.format_table)
    assert callable(nf.testing.reference_round) and callable(nf.testing.verify) and nf.testing.strategies


def test_every_family_is_exported_whole_or_not_at_all():
    # A module's __all__ is its family: the face re-exports all of it or none of it
    # (namespaces such as numfmt.analysis stay modules).
    exported = {id(getattr(nf, n)) for n in nf.__all__}
    for module in _modules():
        names = [n for n in getattr(module, "__all__", ()) if not inspect.ismodule(getattr(module, n))]
        inside = [n for n in names if id(getattr(module, n)) in exported and n in nf.__all__]
        assert not inside or len(inside) == len(names), (
            f"{module.__name__}: exports {sorted(inside)} but not {sorted(set(names) - set(inside))}")


def test_the_api_page_names_every_exported_name():
    text = API_PAGE.read_text()
    listed = set(re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", text, re.MULTILINE))
    missing = set(nf.__all__) - {"analysis"} - listed
    assert not missing, f"docs/api.md does not list {sorted(missing)}"
    for namespace in (nf.analysis, nf.testing):
        assert set(namespace.__all__) <= listed, namespace.__name__


def test_every_exported_function_and_class_has_a_docstring():
    for name in nf.__all__:
        obj = getattr(nf, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert (obj.__doc__ or "").strip(), name

"""Tests of numfmt.describe: how values, codes and formats are spelled as text."""

import numfmt as nf
from numfmt import describe


def test_format_value_styles():
    assert describe.format_value(448.0) == "448.0"
    assert describe.format_value(-0.0) == "-0.0"
    assert describe.format_value(float("nan")) == "nan"
    assert describe.format_value(float("-inf"), "hex") == "-inf"
    assert describe.format_value(448.0, "hex") == "0x1.cp+8"
    assert describe.format_value(2.0**-149, "hex") == "0x1p-149"
    assert describe.format_value(0.1, "exact") == "0.1000000000000000055511151231257827021181583404541015625"
    assert describe.format_value(-128.0, integer=True) == "-128"


def test_codes_are_as_wide_as_the_format():
    assert describe.hex_code(0x7, 4) == "0x7"
    assert describe.hex_code(0x1, 6) == "0x01"
    assert describe.hex_code(0x7FC00000, 32) == "0x7fc00000"
    assert describe.bin_code(5, 6) == "000101"


def test_layout():
    assert describe.layout(nf.E4M3) == "s1e4m3"
    assert describe.layout(nf.E8M0) == "s0e8m0"
    assert describe.layout(nf.UINT4) == "uint4"
    assert describe.layout(nf.get("int8_narrow")) == "int8 narrow"
    assert describe.layout(nf.NF4) == "16 values"


def test_table_aligns_columns():
    text = describe.table(["a", "value"], [["x", "1.0"], ["long", "-0.5"]], right={1})
    assert text.splitlines() == ["a     value", "----  -----", "x       1.0", "long   -0.5"]


def test_card_specials():
    e5m2 = dict(describe.card(nf.E5M2))
    assert e5m2["inf"] == "+inf 0x7c, -inf 0xfc"
    assert e5m2["NaN"] == "0x7d..0x7f, 0xfd..0xff  (encode gives 0x7e)"
    assert e5m2["-0"] == "0x80"
    fnuz = dict(describe.card(nf.E4M3FNUZ))
    assert fnuz["NaN"].startswith("0x80 ") and fnuz["-0"] == "none" and fnuz["bias"] == "8"
    e8m0 = dict(describe.card(nf.E8M0))
    assert e8m0["zero"] == "none" and e8m0["NaN"].startswith("0xff ") and e8m0["bit fields"] == "EEEEEEEE"
    e2m1 = dict(describe.card(nf.E2M1))
    assert e2m1["NaN"] == "none" and e2m1["inf"] == "none" and e2m1["ml_dtypes"] == "float4_e2m1fn"


def test_list_row_has_a_cell_per_header():
    for name in nf.names():
        assert len(describe.list_row(nf.get(name))) == len(describe.LIST_HEADERS)

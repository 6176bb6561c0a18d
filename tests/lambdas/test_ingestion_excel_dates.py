"""Excel's dates and times are read as Excel shows them (ISO 8601), held to openpyxl's reading of
the same workbooks: which number formats are dates, and which moment a serial number is."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from hypothesis import given, strategies as st
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

from ingestion.documents import text_of
from ingestion.excel_dates import BUILTIN_DATES, format_kind, shown
from tests.lambdas.ingestion_corpus import relationships, sheet_xml, xlsx_package

_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

# Format codes as workbooks carry them: Excel's own, locales', colours, conditions, literals.
CODES = [
    "General", "0", "0.00", "#,##0_);[Red](#,##0)", "0.00%", "0.00E+00", "@", '"day" 0', "\\d0", "_d0",
    "yyyy-mm-dd", "dd/mm/yyyy", "d-mmm-yy", "mmmm d, yyyy", "[$-409]mmmm d, yyyy h:mm", "yyyy-mm-dd;@",
    "h:mm AM/PM", "h:mm:ss", "mm:ss", "mm:ss.0", "[h]:mm:ss", "[hh]:mm", "[mm]:ss", "[Red]yyyy-mm-dd",
    "[>100]0;0", 'yyyy"年"m"月"d"日"', "m/d/yy h:mm", '0 "minutes"', "#,##0.00 [$EUR]", "*-0", "ddd",
]  # fmt: skip


@pytest.mark.parametrize("code", [*CODES, *BUILTIN_FORMATS.values()])
def test_a_format_is_a_date_exactly_when_openpyxl_reads_it_as_one(code: str) -> None:
    kind = format_kind(code)
    assert (kind is not None) == is_date_format(code)
    assert (kind == "elapsed") == is_timedelta_format(code)


def test_the_built_in_dates_are_those_excel_names() -> None:
    assert {
        number: format_kind(BUILTIN_FORMATS[number])
        for number in BUILTIN_FORMATS
        if is_date_format(BUILTIN_FORMATS[number])
    } == BUILTIN_DATES
    assert [format_kind(code) for code in ("mm-dd-yy", "h:mm AM/PM", "m/d/yy h:mm", "[h]:mm:ss")] == [
        "date", "time", "datetime", "elapsed"
    ]  # fmt: skip


@given(
    seconds=st.integers(min_value=86_400, max_value=2_958_465 * 86_400 + 86_399).filter(
        lambda s: not 60 * 86_400 <= s < 61 * 86_400  # Excel's 29 February 1900, which never was
    ),
    date1904=st.booleans(),
)
def test_a_serial_is_the_moment_openpyxl_reads(seconds: int, date1904: bool) -> None:
    serial = repr(seconds / 86_400)
    epoch = CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900
    try:
        moment = from_excel(float(serial), epoch)
    except OverflowError:  # past 9999 from 1904
        assert shown(serial, "datetime", date1904=date1904) == serial
        return
    moment = (moment + dt.timedelta(microseconds=500_000)).replace(microsecond=0)  # to the second, as Excel shows
    assert shown(serial, "datetime", date1904=date1904) == moment.isoformat(" ")
    assert shown(serial, "date", date1904=date1904) == moment.date().isoformat()
    assert shown(serial, "time", date1904=date1904) == moment.time().isoformat()


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("1.520833333333333", "elapsed", "36:30:00"),
        ("0.5", "time", "12:00:00"),
        ("0.5", "date", "0.5"),  # day 0 of 1900 is no date
        ("60", "date", "60"),  # nor 29 February 1900
        ("59", "date", "1900-02-28"),
        ("61", "date", "1900-03-01"),
        ("-1", "date", "-1"),
        ("2958466", "date", "2958466"),  # past 9999
        ("1e300", "datetime", "1e300"),
        ("nan", "date", "nan"),
        ("inf", "elapsed", "inf"),
        ("12x", "date", "12x"),
    ],
)
def test_numbers_excel_shows_as_no_date_stay_as_stored(value: str, kind: str, expected: str) -> None:
    assert shown(value, kind) == expected


def workbook_with_dates(*, date1904: bool = False) -> bytes:
    book = openpyxl.Workbook()
    if date1904:
        book.epoch = CALENDAR_MAC_1904
    sheet = book.active
    sheet.append(
        [dt.datetime(2023, 12, 31, 18, 0), dt.date(2024, 2, 29), dt.time(9, 30, 15), dt.timedelta(hours=36, minutes=30)]
    )
    sheet.append([0.25, 12, 45291.75, 45291.75, 45291.75])
    sheet["A2"].number_format = "0.00%"
    sheet["C2"].number_format = "dd/mm/yyyy"
    sheet["D2"].number_format = "h:mm AM/PM"
    sheet["E2"].number_format = '"day" 0'
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("date1904", [False, True])
def test_a_workbooks_dates_and_times_are_read_as_excel_shows_them(date1904: bool) -> None:
    """openpyxl writes the first row's values as serials of the workbook's epoch; the second row's
    serial 45291.75 is a moment of that epoch (31 December 2023 from 1900, 1 January 2028 from 1904)."""
    serial_date = "2028-01-01" if date1904 else "2023-12-31"
    assert text_of(workbook_with_dates(date1904=date1904), "xlsx") == (
        f"2023-12-31 18:00:00\t2024-02-29\t09:30:15\t36:30:00\n0.25\t12\t{serial_date}\t18:00:00\t45291.75"
    )


def styles(cell_formats: list[str], own: dict[str, str] | None = None) -> str:
    numfmts = "".join(f'<numFmt numFmtId="{n}" formatCode="{code}"/>' for n, code in (own or {}).items())
    xfs = "".join(f'<xf numFmtId="{n}"/>' for n in cell_formats)
    return (
        f'<styleSheet xmlns="{_S}"><numFmts>{numfmts}</numFmts><cellStyleXfs><xf numFmtId="14"/></cellStyleXfs>'
        f'<cellXfs>{xfs}</cellXfs><dxfs><dxf><numFmt numFmtId="164" formatCode="yyyy"/></dxf></dxfs></styleSheet>'
    )


def test_styles_hostile_or_missing_leave_the_number_as_stored() -> None:
    """A style index that is no index or names no style, a format id that is no number, a format
    a differential format (dxf) redefines, the cell styles' (cellStyleXfs) formats: all numbers."""
    sheet = sheet_xml([["45291"] * 6]).replace("<c>", '<c s="{}">')
    sheet = sheet.format("abc", "-1", "99", "0", "1", "2")
    book = xlsx_package([sheet], extra={"xl/styles.xml": styles(["0", "x14", "164", "14"], own={"164": "0.0"})})
    assert text_of(book, "xlsx") == "45291\t45291\t45291\t45291\t45291\t45291"
    dated = xlsx_package([sheet.replace('s="2"', 's="3"')], extra={"xl/styles.xml": styles(["0", "x14", "164", "14"])})
    assert text_of(dated, "xlsx").endswith("\t2023-12-31")


def test_the_styles_part_is_the_one_the_workbook_relates_to() -> None:
    """A styles part elsewhere than xl/styles.xml is found through the workbook's relationships,
    and strings and text cells are never dates whatever their style."""
    sheet = sheet_xml([["45291", "s:0", "text"]]).replace("<c", '<c s="0"')
    book = xlsx_package(
        [sheet],
        extra={
            "xl/_rels/workbook.xml.rels": relationships({"rId1": "worksheets/sheet1.xml"}, "worksheet").replace(
                "</Relationships>",
                relationships({"rId9": "looks/own.xml"}, "styles").split(">", 1)[1],
            ),
            "xl/looks/own.xml": styles(["15"]),
            "xl/sharedStrings.xml": f'<sst xmlns="{_S}"><si><t>45291</t></si></sst>',
        },
    )
    assert text_of(book, "xlsx") == "2023-12-31\t45291\ttext"  # 15 is Excel's d-mmm-yy

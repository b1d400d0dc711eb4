"""Rebuild the bundled station reference from recorded Opendatasoft exports.

`python -m velib_assets.reference_build PATH...` writes `velib_assets/data/station_reference.parquet`;
the bundled copy was built from the sample exports shipped in `velib_assets/sample/`.
"""

import sys
from pathlib import Path

import polars as pl

from velib_assets import lake
from velib_assets.importer import iter_files
from velib_assets.reference import REFERENCE_FILE, build_reference
from velib_assets.sources import formats, parsers
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.recorded import read_recorded


def opendata_rows(paths: list[Path]) -> pl.DataFrame:
    """Raw rows of every parseable Opendatasoft capture among `paths` (others are passed over)."""
    frames = []
    for path in iter_files(paths):
        try:
            recorded = read_recorded(path)
        except (CaptureParseError, OSError):
            continue
        if recorded.fmt in (formats.OPENDATA_JSON, formats.OPENDATA_CSV, formats.OPENDATA_PARQUET):
            frames.append(parsers.parse_capture(recorded.body, recorded.fmt, recorded.capture_time))
    return pl.concat(frames) if frames else pl.DataFrame()


def main(argv: list[str]) -> int:
    rows = opendata_rows([Path(a) for a in argv])
    if rows.is_empty():
        print("no Opendatasoft capture found", file=sys.stderr)
        return 1
    reference = build_reference(rows)
    lake.write_parquet_file(reference, REFERENCE_FILE)
    print(f"{REFERENCE_FILE}: {reference.height} stations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

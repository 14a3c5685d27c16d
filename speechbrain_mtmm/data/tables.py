"""Reading CSV tables strictly: the manifests of ``mtmm predict`` and of
``mtmm prepare csv``.

Python's ``csv`` module reads the format; this module adds the checks a
user needs to find a bad row (its line, the reason), which no library
does.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv


class CSVError(ValueError):
    """A CSV file that cannot be read as a table; names the file and line."""


def read_csv(path, required=("path",), lines=False):
    """Rows of a CSV file with a header, every row checked.

    A byte-order mark (Excel's "CSV UTF-8") is skipped. A row with more or
    fewer fields than the header (an unquoted comma in a transcript), a
    column named twice in the header, a
    quoted field running over several lines (an unterminated quote would
    swallow the rows after it) or an empty required value is an error
    naming its line: no row is dropped or merged silently.

    Arguments
    ---------
    path : str or path-like
        The CSV file.
    required : tuple of str
        Columns that must be present.
    lines : bool
        Return ``(line number, row)`` pairs, for messages naming a line.

    Returns
    -------
    list of dict (or of (int, dict) with ``lines``)

    Example
    -------
    >>> path = getfixture("tmpdir") / "m.csv"
    >>> _ = path.write_text("path,text\\na.wav,Hello\\n", "utf-8")
    >>> read_csv(path)
    [{'path': 'a.wav', 'text': 'Hello'}]
    >>> _ = path.write_text("path,text\\na.wav,Hello, you\\n", "utf-8")
    >>> read_csv(path)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.tables.CSVError: ...m.csv line 2: 3 \
fields, the header has 2 (quote a text that holds commas)
    """
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fin:
            reader = csv.reader(fin)
            columns = [name.strip() for name in next(reader, [])]
            twice = sorted({c for c in columns if columns.count(c) > 1})
            if twice:  # a row would keep only the last of its values
                raise CSVError(
                    f"{path}: line 1: column {', '.join(twice)} twice"
                )
            missing = [name for name in required if name not in columns]
            if missing:
                raise CSVError(f"{path}: no column {', '.join(missing)}")
            line = reader.line_num
            for fields in reader:
                start, line = line + 1, reader.line_num
                where = f"{path} line {start}"
                if line > start:
                    raise CSVError(
                        f"{where}: a quoted field runs over lines "
                        f"{start}-{line} (an unterminated quote?)"
                    )
                if not fields:
                    continue  # a blank line
                if len(fields) != len(columns):
                    raise CSVError(
                        f"{where}: {len(fields)} fields, the header has "
                        f"{len(columns)} (quote a text that holds commas)"
                    )
                row = dict(zip(columns, fields))
                if "path" in row and not row["path"].strip():
                    raise CSVError(f"{where}: empty path")
                rows.append((start, row) if lines else row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CSVError(f"{path}: cannot read the CSV ({error})") from None
    return rows

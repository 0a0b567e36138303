"""Reading user-supplied JSONL files with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

SKIP_CHUNK = 1 << 20


def bounded_lines(f: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(length in bytes, line) for each line of `f` from its current position; the line is None when it
    is longer than `limit` bytes: it is then read past in 1 MiB chunks, never held whole. The last line
    may lack its newline (a torn tail)."""
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) <= limit:
            yield len(raw), raw
            continue
        length = len(raw)
        while chunk := f.readline(SKIP_CHUNK):
            length += len(chunk)
            if chunk.endswith(b"\n"):
                break
        yield length, None


MAX_ROW_BYTES = 64 << 20


def read_rows(path: str | Path, error: type[Exception] = ValueError, required: tuple[str, ...] = ()
              ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-empty line; `error` is raised for a missing file, a line that is not
    UTF-8 or not a JSON object (nesting or integers beyond what the decoder takes included), a line over
    `MAX_ROW_BYTES`, or a row lacking one of `required`."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} does not exist")
    with open(path, "rb") as f:
        for lineno, (length, raw) in enumerate(bounded_lines(f, MAX_ROW_BYTES), 1):
            if raw is None:
                raise error(f"{path}:{lineno}: line of {length} bytes is over the {MAX_ROW_BYTES}-byte limit")
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise error(f"{path}:{lineno}: not UTF-8 text (byte {e.start})") from None
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            except (ValueError, RecursionError) as e:
                problem = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(";")[0]
                raise error(f"{path}:{lineno}: not readable JSON ({problem})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{lineno}: each line must be a JSON object")
            for key in required:
                if key not in row:
                    raise error(f"{path}:{lineno}: missing field {key!r} (rows need {', '.join(required)})")
            yield lineno, row

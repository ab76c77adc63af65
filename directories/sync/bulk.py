"""Insert many rows fast: COPY on PostgreSQL, executemany on SQLite, no model instances.

A first sync of a large tenant writes over a million memberships and as many mirror edges;
building a model instance per row costs more than the database does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from django.db import connection, models

CHUNK = 5000


def _chunks(rows: Iterable[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _adapter() -> Callable[[Any], Any]:
    """Adapt values for executemany; a run writes one timestamp a million times: once."""
    datetimes: dict[datetime, Any] = {}

    def adapt(value: Any) -> Any:
        if isinstance(value, datetime):
            adapted = datetimes.get(value)
            if adapted is None:
                adapted = datetimes[value] = connection.ops.adapt_datetimefield_value(value)
            return adapted
        if isinstance(value, (list, dict)):
            return json.dumps(value)
        return value

    return adapt


def insert_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    """INSERT rows given as tuples in `fields` order (attribute names: `x_id` for a FK)."""
    opts = model._meta
    quote = connection.ops.quote_name
    table = quote(opts.db_table)
    column_of = {field.attname: str(field.column) for field in opts.concrete_fields}
    columns = [quote(column_of[name]) for name in fields]
    count = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(
                        tuple(json.dumps(v) if isinstance(v, (list, dict)) else v for v in row)
                    )
                    count += 1
            return count
        values = ", ".join(["%s"] * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
        adapt = _adapter()
        for chunk in _chunks(rows):
            cursor.executemany(sql, [tuple(map(adapt, row)) for row in chunk])
            count += len(chunk)
    return count

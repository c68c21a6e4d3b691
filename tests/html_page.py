"""Reading back what an HTML report embeds, and opening reports in headless Chromium (Debian's chromium,
driven by Playwright with the network off)."""

from __future__ import annotations

import json
import re
from typing import Any

DATA = re.compile(r'<script type="application/json" id="bncheck-data">(.*?)</script>', re.S)
CHROMIUM = "/usr/bin/chromium"


def page_data(page: str) -> dict[str, Any]:
    """The data a report page embeds (its tables' rows)."""
    found = DATA.search(page)
    assert found, "no embedded data in the page"
    return json.loads(found.group(1))


def data_text(page: str) -> str:
    """The embedded data as indented JSON with one table row per line, for golden files."""
    data = page_data(page)
    tables = data["models"] if data["kind"] == "inspect" else [data]
    rows = []
    for i, table in enumerate(tables):
        rows.append(table["rows"])
        table["rows"] = f"@rows{i}@"
    text = json.dumps(data, indent=2, ensure_ascii=False)
    for i, table_rows in enumerate(rows):
        lines = ",\n".join("      " + json.dumps(row, ensure_ascii=False) for row in table_rows)
        text = text.replace(f'"@rows{i}@"', f"[\n{lines}\n    ]" if table_rows else "[]")
    return text + "\n"

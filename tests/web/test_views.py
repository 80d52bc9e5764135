"""The pages render only what differs: a large backup with a few changes gives a small page."""

from __future__ import annotations

import re

from confmerge import diff, parse
from confmerge.web import views


def test_a_100k_line_comparison_renders_only_the_changes_and_their_context() -> None:
    blocks = [f"policy rate p{k}\n  downlink {k % 900 + 1}M\n  uplink 1M\n  congestion-management yes\n"
              for k in range(25_000)]
    old_text = "".join(blocks)
    changed = list(blocks)
    changed[12_345] = changed[12_345].replace("uplink 1M", "uplink 2M")
    changed.append("policy rate added\n  downlink 5M\n")
    new_text = "".join(changed)
    assert old_text.count("\n") == 100_000
    result = diff(parse(old_text, "old.conf"), parse(new_text, "new.conf"))
    page = views.compare(result, old_text.splitlines(), new_text.splitlines(), "csrf")
    assert len(result.changes) == 2 and len(re.findall(r'<article class="chg', page)) == 2
    assert len(page) < 40_000
    assert "p12346" in page and "p12343" not in page and "p12347" not in page  # three lines of context, no more
    assert '<mark class=del>1M</mark>' in page and '<mark class=ins>2M</mark>' in page

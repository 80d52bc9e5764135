"""``clusterd.describe``: a generation's one-line summary, from confmerge's cluster-scope diff."""

from __future__ import annotations

from confmerge import cluster_part, parse

from clusterd.describe import summarize

from .test_sync import V2

BEFORE = cluster_part(parse(V2[0], "v2"))


def test_sections_added_removed_and_changed_are_named():
    after = BEFORE.replace("  downlink 5M\n", "  downlink 7M\n").replace("dns\n", "dns\n  server 9.9.9.9\n")
    after = after.replace("profile time peak-time\n", "policy rate gold\n  downlink 1G\nprofile time peak-time\n")
    assert summarize(BEFORE, after) == "added policy rate gold; changed dns, policy rate sw-updates-peak"
    assert summarize(BEFORE, BEFORE) == "no cluster-wide change"
    assert summarize(BEFORE, BEFORE.replace("timezone Europe/Madrid\n", "")).startswith("removed timezone")


def test_server_specific_content_does_not_count_and_many_sections_are_counted():
    assert summarize(BEFORE, cluster_part(parse(V2[1], "v2 of server 1"))) == "no cluster-wide change"
    assert summarize(None, BEFORE).startswith("added timezone, ntp, dns and ") and BEFORE.count("\n") > 3
    assert summarize(BEFORE, "ntp\n\tserver 1.1.1.1\n").startswith("changes not summarized: ")

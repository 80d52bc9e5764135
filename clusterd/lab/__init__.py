"""The fault lab: real daemons in network namespaces, real faults, operators editing, and a checker.

:mod:`.world` makes the namespaces, processes and faults; :mod:`.operators`
edits the live backups and records every edit; :mod:`.checker` samples the
cluster and judges it; :mod:`.soak` runs seeded random faults. Needs root and
iproute2 (:func:`.world.unavailable` says why not).
"""

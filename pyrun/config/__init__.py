"""The config model: the bundle's config.json loaded, type-checked and turned into typed records once
(runc's specconv), the names it may use, the rules across its fields, and the defaults ``pyrun
spec`` writes.

Below this package no module sees a dict of config.json; every error names the JSON path.
"""

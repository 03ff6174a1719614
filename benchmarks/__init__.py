"""Benchmarks of chanjing-async: every speed claim measured against a baseline in the same run.

Run ``python -m benchmarks`` (``--smoke`` for a quick check that they still work). Each
scenario starts its own emulator on loopback with shortened windows and, unless it measures
the client's own cost, random latency; results go to ``benchmarks/results/latest.json`` and
``latest.md``.
"""

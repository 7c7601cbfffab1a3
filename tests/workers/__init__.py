"""Worker programs the reliability tests run in separate processes.

Each is a plain module started with ``python -m tests.workers.<name>`` from the
repository root, so that concurrency and crash tests exercise real processes
with their own database connections, not threads sharing one interpreter.
"""

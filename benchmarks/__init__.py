"""Benchmarks of the verifiable log (issue 2). Not tests: run by hand.

    python -m benchmarks.run --db sqlite --out benchmarks/results.json
    python -m benchmarks.run --db postgres --out benchmarks/results.json

See docs/benchmarks.md for what is measured and what the targets mean.
"""

"""Fake Discord and Runware servers on 127.0.0.1, shared by the tests and the benchmarks (see README.md here)."""

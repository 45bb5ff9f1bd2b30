"""Pytest fixtures for the fake Runware server (filled in with the fake)."""

"""Pytest fixtures for the fake Discord server (filled in with the fake)."""

"""The standalone fake Runware and its helpers, shared with tests/test_cli.py (one fake per test module)."""

from tests.test_cli import fake_url, fast_config, fresh_fake

__all__ = ["fake_url", "fast_config", "fresh_fake"]

"""The process exit statuses of every command (contract §5.2)."""

EXIT_OK = 0
"""Done as asked."""

EXIT_FAILED = 1
"""A service failed (Runware refused or broke, Discord unreachable or unavailable)."""

EXIT_USAGE = 2
"""Bad input or configuration, refused locally before any request is sent; the operator must fix it."""

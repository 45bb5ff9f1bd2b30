"""Atelier: a Discord bot for GPT Image generations on Runware with per-member spend budgets."""

__version__ = "0.1.0"

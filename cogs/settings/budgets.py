"""The budget part of `/settings show`: the server's budget rules and every team budget.

The period, the default allowance, the server cap, how many role allowances and member overrides there are
(`/budget show` lists them), and every team budget with what is left of it this period.

No subcommand of its own: budgets are changed with `/budget` (which audits them like every setting).
"""

from __future__ import annotations

from bot.discord.embeds import pool_text
from bot.money import format_usd
from cogs.settings.group import SettingsBase, ShowField
from cogs.settings.moderation import listing


class BudgetShow(SettingsBase):
    """Budgets on `/settings show` (a part of `SettingsCommands`)."""

    async def show_fields(self, guild_id: int) -> list[ShowField]:
        """Add the server's budget rules and its team budgets to `/settings show`."""
        rules = await self._services.budgets.rules(guild_id)
        pools = await self._services.pools.statuses(guild_id)
        cap = "none" if rules.server_cap is None else format_usd(rules.server_cap)
        roles, overrides = len(rules.role_allowances), len(rules.member_overrides)
        text = (
            f"per **{rules.period.value}**: default allowance **{format_usd(rules.default_allowance)}** · "
            f"server cap **{cap}** · {roles} role allowance{'' if roles == 1 else 's'}, {overrides} member "
            f"override{'' if overrides == 1 else 's'} (`/budget show` lists them)"
        )
        mine = [
            ShowField("Budget", text),
            ShowField("Team budgets", listing([pool_text(pool) for pool in pools], "none")),
        ]
        return [*mine, *await super().show_fields(guild_id)]

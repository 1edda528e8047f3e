"""ReviewBot conversation API: the gateway between customers, the bot and CSRs."""

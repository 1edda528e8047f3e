"""Customer satisfaction: one rating (1-5) and an optional comment per conversation."""

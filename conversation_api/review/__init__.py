"""Conversation review: customer messages the bot was unsure of or got wrong, annotated into training data."""

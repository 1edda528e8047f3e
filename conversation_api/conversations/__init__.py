"""Conversations and their messages: storage, service verbs and HTTP routes."""

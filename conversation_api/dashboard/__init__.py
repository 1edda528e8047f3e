"""The business owners' figures, computed from the conversations, events and feedback tables."""

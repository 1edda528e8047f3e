"""Rasa: the input channel Rasa loads (`channel.py`, Python 3.10 with Rasa) and the
client the conversation API uses to call it (`client.py`, Python 3.11).

Nothing here is imported eagerly, so each side only loads its own half.
"""

"""Edges to the outside world: one package per external system."""

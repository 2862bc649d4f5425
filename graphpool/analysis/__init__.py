"""Analyses built on readouts: class activation maps, expressiveness."""

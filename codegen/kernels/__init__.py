"""Kernel builders and hand-written emitters (one family each)."""

"""Targets that print code or documents from a derivation; see README.md in this folder."""

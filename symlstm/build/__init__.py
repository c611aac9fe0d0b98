"""Generating, loading and building: `generated/`, module loading, figures and PDFs."""

"""The LaTeX target: derivation documents printed from the engine, with every claim checked."""

from .documents import (
    CellTex,
    ClaimError,
    Document,
    Row,
    cell_document,
    latex_env,
    render_documents,
    topic_documents,
)
from .printer import TexPrinter

__all__ = [
    "CellTex",
    "ClaimError",
    "Document",
    "Row",
    "TexPrinter",
    "cell_document",
    "latex_env",
    "render_documents",
    "topic_documents",
]

"""The LaTeX target: derivation documents printed from the engine, with every claim checked."""

from .celltex import CellTex
from .document import ClaimError, Document, Row, latex_env
from .documents import cell_document, documents, render_documents, topic_documents
from .printer import TexPrinter

__all__ = [
    "CellTex",
    "ClaimError",
    "Document",
    "Row",
    "TexPrinter",
    "cell_document",
    "documents",
    "latex_env",
    "render_documents",
    "topic_documents",
]

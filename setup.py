"""The one build setting pyproject.toml cannot express: `generated/` ships inside the package.

The committed top-level `generated/` stays the source of truth (`symlstm generate` writes it, a golden
test diffs it); a wheel carries a copy of it as `symlstm/generated/` (package `symlstm.generated`), which
`symlstm.load` uses when the package runs outside a source checkout. Everything else is declared in
pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

# Installed package name -> the checkout folder it is built from.
SHIPPED = {"symlstm.generated": "generated"}

setup(
    packages=[
        *find_namespace_packages(include=["symlstm", "symlstm.*"], exclude=["*.__pycache__"]),
        *(
            f"{package}{sub}"
            for package in SHIPPED
            for sub in ("", ".numpy", ".reference", ".numba", ".latex")
        ),
    ],
    package_dir=SHIPPED,
)

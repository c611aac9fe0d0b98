"""Runtime of every generated numba module: BLAS gemm with accumulation, called from compiled kernels.

The routines are numpy's own where they can be found (the scipy-openblas64 library numpy's wheels
bundle: one BLAS, one thread pool, for the module and the program around it), else scipy's
(`scipy.linalg.cython_blas`); `SYMLSTM_NUMBA_BLAS=scipy` chooses scipy's. Two BLAS libraries whose idle
threads spin on the same cores took twice the time of one: forward + backward of a medium float32
LSTM beside a numpy readout layer took 152 ms on scipy's BLAS, against 59 ms without the readout and
17 ms for the readout alone. `blas_in_use()` says which one runs.

Both are Fortran routines (every argument by pointer, column-major); numpy's takes 64-bit integers,
scipy's 32-bit. A table of three int64 values (sgemm's address, dgemm's, the integers' width in bits)
is registered with LLVM under one name per process, and the kernels read it when they run: the machine
code numba caches names the table, not an address or a width of one process, so it runs whichever BLAS
the next process finds.

Row-major, for arrays whose rows are contiguous (the row stride may be anything: row views and column
blocks of a wider array), one float type for the three (else a typing error), c writeable; rows that
are not contiguous, shapes that do not make the product and sizes past 2**31 - 1 on scipy's 32-bit
BLAS are refused with ValueError:
    _gemm_nt(a, b, c, beta): c = a @ b.T + beta * c    (a (m, k), b (n, k), c (m, n))
    _gemm_nn(a, b, c, beta): c = a @ b + beta * c      (a (m, k), b (k, n), c (m, n))
    _gemm_tn(a, b, c, beta): c = a.T @ b + beta * c    (a (k, m), b (k, n), c (m, n))
Every GEMM of a module goes through them, the whole-sequence ones called from Python included.
"""

import ctypes
import os
from pathlib import Path

import numpy as np

numba = None  # stand-ins for what the module defines before this point (runtime/jit.py)


def _cython_function_address(module, name): ...


def _jit(function): ...


# -- generated modules include this file from the next line on --
_BLAS_TABLE = "symlstm_blas_table"  # the table's name in LLVM (process-wide, the same in every module)
_TRANS, _NOTRANS = 84, 78  # ord("T"), ord("N"): the Fortran transpose flags


def _numpy_blas_paths():
    """Files that may hold numpy's scipy-openblas64: those mapped into this process (Linux), then the
    folders numpy's wheels put it in."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            fields = (line.split(maxsplit=5) for line in maps)
            paths += [f[5].strip() for f in fields if len(f) == 6 and "openblas64" in f[5]]
    except OSError:
        pass
    root = Path(np.__file__).parent
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        paths += [str(path) for path in sorted(folder.glob("*openblas64*"))]
    return list(dict.fromkeys(paths))


def _multiplies(routine, real):
    """Whether `routine`, called as a Fortran xgemm with 64-bit integers on floats of type `real`, gives
    the product of a 2 x 3 and a 3 x 2 matrix."""
    n = ctypes.c_int64
    a, b, c = (real * 6)(1, 4, 2, 5, 3, 6), (real * 6)(7, 9, 11, 8, 10, 12), (real * 4)()
    flag = ctypes.c_char(b"N")
    two, three, one, zero = n(2), n(3), real(1), real(0)
    routine(ctypes.byref(flag), ctypes.byref(flag), ctypes.byref(two), ctypes.byref(two),
            ctypes.byref(three), ctypes.byref(one), a, ctypes.byref(two), b, ctypes.byref(three),
            ctypes.byref(zero), c, ctypes.byref(two))  # fmt: skip
    return list(c) == [58.0, 139.0, 64.0, 154.0]


def _numpy_blas():
    """numpy's (sgemm, dgemm) addresses, or None where they cannot be found or do not multiply."""
    for path in _numpy_blas_paths():
        try:
            library = ctypes.CDLL(path)
            sgemm, dgemm = library.scipy_sgemm_64_, library.scipy_dgemm_64_
        except (OSError, AttributeError):
            continue
        if _multiplies(sgemm, ctypes.c_float) and _multiplies(dgemm, ctypes.c_double):
            return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in (sgemm, dgemm))
    return None


def _blas_table():
    """The process's table (sgemm, dgemm, integer bits), registered with LLVM on first use. Every table
    made is kept on llvmlite's binding module, which lives as long as the process, so code linked to
    one (by any module, from any thread) always reads live memory."""
    tables = _llvm_binding.__dict__.setdefault("symlstm_blas_tables", [])
    if not tables:
        choice = os.environ.get("SYMLSTM_NUMBA_BLAS", "")
        if choice not in ("", "scipy"):
            raise ValueError(
                f"SYMLSTM_NUMBA_BLAS must be 'scipy' (scipy's BLAS) or unset (numpy's where it is found), "
                f"got {choice!r}"
            )
        found = None if choice == "scipy" else _numpy_blas()
        if found is not None:
            table = (ctypes.c_int64 * 3)(*found, 64)
        else:
            routines = [_cython_function_address("scipy.linalg.cython_blas", r) for r in ("sgemm", "dgemm")]
            table = (ctypes.c_int64 * 3)(*routines, 32)
        tables.append(table)
        _llvm_binding.add_symbol(_BLAS_TABLE, ctypes.addressof(table))
    return tables[-1]


def blas_in_use():
    """Which BLAS the kernels call: "numpy (scipy-openblas64)" or "scipy"."""
    if numba is None:
        return "none (numba is not installed)"
    return "numpy (scipy-openblas64)" if _blas_table()[2] == 64 else "scipy"


if numba is not None:
    from llvmlite import binding as _llvm_binding
    from llvmlite import ir as _llvm_ir
    from numba.core import cgutils as _cgutils
    from numba.extending import intrinsic as _intrinsic

    _blas_table()

    def _table_entry(builder, index):
        """Entry `index` of the table (an i64), the table declared in the function's LLVM module once."""
        i32, i64 = _llvm_ir.IntType(32), _llvm_ir.IntType(64)
        try:
            table = builder.module.get_global(_BLAS_TABLE)
        except KeyError:
            table = _llvm_ir.GlobalVariable(builder.module, _llvm_ir.ArrayType(i64, 3), _BLAS_TABLE)
            table.linkage = "external"
        return builder.load(builder.gep(table, [i32(0), i32(index)]))

    @_intrinsic
    def _xgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        """Fortran xgemm on the data of arrays a, b and c (sgemm or dgemm by c's dtype), through the
        table: its integers 64 or 32 bits wide as the table says."""
        arrays = (a, b, c)
        if not all(isinstance(x, numba.types.Array) for x in arrays) or not c.mutable:
            return None  # a typing error: gemm takes three arrays and writes the last
        dtype = c.dtype
        if dtype not in (numba.float32, numba.float64) or a.dtype != dtype or b.dtype != dtype:
            return None  # a typing error: one float type for the three
        signature = numba.types.void(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

        def codegen(context, builder, sig, args):
            i8, i32, i64 = _llvm_ir.IntType(8), _llvm_ir.IntType(32), _llvm_ir.IntType(64)
            real = context.get_value_type(dtype).as_pointer()
            address = _table_entry(builder, 0 if dtype == numba.float32 else 1)
            bits = _table_entry(builder, 2)
            calls = {}
            for width in (i64, i32):
                kinds, values = [], []
                for position, (value, ty) in enumerate(zip(args, sig.args)):
                    if isinstance(ty, numba.types.Array):  # the data pointer
                        array = context.make_array(ty)(context, builder, value)
                        kinds.append(real)
                        values.append(builder.bitcast(array.data, real))
                    elif position in (5, 10):  # alpha, beta: by pointer, in the routine's precision
                        kinds.append(real)
                        scalar = context.cast(builder, value, ty, dtype)
                        values.append(_cgutils.alloca_once_value(builder, scalar))
                    else:  # a flag (8 bits) or an integer, by pointer
                        kind = i8 if position < 2 else width
                        whole = context.cast(builder, value, ty, numba.types.int64)
                        kinds.append(kind.as_pointer())
                        narrow = whole if kind is i64 else builder.trunc(whole, kind)
                        values.append(_cgutils.alloca_once_value(builder, narrow))
                function_type = _llvm_ir.FunctionType(_llvm_ir.VoidType(), kinds)
                calls[width] = (builder.inttoptr(address, function_type.as_pointer()), values)
            with builder.if_else(builder.icmp_signed("==", bits, i64(64))) as (wide, narrow):
                with wide:
                    builder.call(*calls[i64])
                with narrow:
                    builder.call(*calls[i32])
            return context.get_dummy_value()

        return signature, codegen

    @_intrinsic
    def _blas_bits(typingctx):
        """The width in bits of the integers the table's routines take (64 or 32)."""

        def codegen(context, builder, sig, args):
            return _table_entry(builder, 2)

        return numba.types.int64(), codegen


@_jit
def _lead(a):
    """The leading dimension of row-major `a` for BLAS: its row stride in elements (its width when it
    has one row or none, whose stride NumPy leaves free)."""
    rows, width, size = a.shape[0], a.shape[1], a.itemsize
    if rows == 0 or width == 0:  # no element is read or written
        return max(width, 1)
    if width > 1 and a.strides[1] != size:
        raise ValueError("gemm: an operand's rows are not contiguous")
    if rows == 1:
        return width
    if a.strides[0] % size != 0 or a.strides[0] // size < width:
        raise ValueError("gemm: an operand's rows overlap, run backwards or are not aligned")
    return a.strides[0] // size  # at least the width, which is at least 1 here


@_jit
def _check_gemm(inner, k, m, n, c, leads):
    """b's inner size is a's (`inner` against k), c is (m, n), and every size fits the routines'
    integers (scipy's are 32 bits wide)."""
    if inner != k:
        raise ValueError("gemm: the operands' inner sizes differ")
    if c.shape[0] != m or c.shape[1] != n:
        raise ValueError("gemm: the output's shape is not the product's")
    if _blas_bits() == 32 and max(m, n, k, leads[0], leads[1], leads[2]) > 2147483647:
        raise ValueError("gemm: a size past 2**31 - 1, more than scipy's 32-bit BLAS takes")


@_jit
def _gemm_nt(a, b, c, beta):
    m, k = a.shape
    n = b.shape[0]
    leads = (_lead(a), _lead(b), _lead(c))
    _check_gemm(b.shape[1], k, m, n, c, leads)
    if m == 0 or n == 0:
        return
    _xgemm(_TRANS, _NOTRANS, n, m, k, 1.0, b, leads[1], a, leads[0], beta, c, leads[2])


@_jit
def _gemm_nn(a, b, c, beta):
    m, k = a.shape
    n = b.shape[1]
    leads = (_lead(a), _lead(b), _lead(c))
    _check_gemm(b.shape[0], k, m, n, c, leads)
    if m == 0 or n == 0:
        return
    _xgemm(_NOTRANS, _NOTRANS, n, m, k, 1.0, b, leads[1], a, leads[0], beta, c, leads[2])


@_jit
def _gemm_tn(a, b, c, beta):
    k, m = a.shape
    n = b.shape[1]
    leads = (_lead(a), _lead(b), _lead(c))
    _check_gemm(b.shape[0], k, m, n, c, leads)
    if m == 0 or n == 0:
        return
    _xgemm(_NOTRANS, _TRANS, n, m, k, 1.0, b, leads[1], a, leads[0], beta, c, leads[2])

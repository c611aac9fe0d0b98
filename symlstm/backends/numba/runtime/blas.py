"""Runtime of every generated numba module: BLAS gemm with accumulation, called from compiled kernels.

scipy.linalg.cython_blas exports sgemm and dgemm as C functions (Fortran convention: every argument by
pointer, column-major). Their addresses are registered with LLVM under fixed names when the module is
imported, and an intrinsic calls them by name: the machine code numba caches names a symbol, not an
address of one process, so it links in the next process once the module has been imported there.

Row-major, for arrays whose rows are contiguous (the row stride may be anything: row views and column
blocks of a wider array; a row that is not contiguous is refused with ValueError):
    _gemm_nt(a, b, c, beta): c = a @ b.T + beta * c    (a (m, k), b (n, k), c (m, n))
    _gemm_nn(a, b, c, beta): c = a @ b + beta * c      (a (m, k), b (k, n), c (m, n))
    _gemm_tn(a, b, c, beta): c = a.T @ b + beta * c    (a (k, m), b (k, n), c (m, n))
Every GEMM of a module goes through them, the whole-sequence ones called from Python included: numpy's
matmul runs on another BLAS library (its own thread pool), and two pools whose idle threads spin on
the same cores took twice the time of one.
"""

numba = None  # stand-ins for what the module defines before this point (runtime/jit.py)


def _cython_function_address(module, name): ...


def _jit(function): ...


# -- generated modules include this file from the next line on --
# The symbols under which the BLAS routines are known to LLVM (process-wide, the same in every module).
_GEMM_SYMBOLS = {"sgemm": "symlstm_cython_sgemm", "dgemm": "symlstm_cython_dgemm"}
_TRANS, _NOTRANS = 84, 78  # ord("T"), ord("N"): the Fortran transpose flags

if numba is not None:
    from llvmlite import binding as _llvm_binding
    from llvmlite import ir as _llvm_ir
    from numba.core import cgutils as _cgutils
    from numba.extending import intrinsic as _intrinsic

    for _routine, _symbol in _GEMM_SYMBOLS.items():
        _llvm_binding.add_symbol(_symbol, _cython_function_address("scipy.linalg.cython_blas", _routine))

    @_intrinsic
    def _xgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        """Fortran xgemm on the data of arrays a, b and c (sgemm or dgemm by c's dtype)."""
        if not isinstance(c, numba.types.Array) or c.dtype not in (numba.float32, numba.float64):
            return None
        dtype = c.dtype
        signature = numba.types.void(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

        def codegen(context, builder, sig, args):
            i32, i8 = _llvm_ir.IntType(32), _llvm_ir.IntType(8)
            real = context.get_value_type(dtype).as_pointer()
            ints, chars = i32.as_pointer(), i8.as_pointer()
            kinds = [chars, chars, ints, ints, ints, real, real, ints, real, ints, real, real, ints]
            routine = _GEMM_SYMBOLS["sgemm" if dtype == numba.float32 else "dgemm"]
            function = _cgutils.get_or_insert_function(
                builder.module, _llvm_ir.FunctionType(_llvm_ir.VoidType(), kinds), routine
            )
            values = []
            for value, ty, kind in zip(args, sig.args, kinds):
                if isinstance(ty, numba.types.Array):  # the data pointer
                    array = context.make_array(ty)(context, builder, value)
                    values.append(builder.bitcast(array.data, real))
                elif kind is real:  # a scalar, by pointer, in the routine's precision
                    values.append(
                        _cgutils.alloca_once_value(builder, context.cast(builder, value, ty, dtype))
                    )
                else:  # an integer or a flag, by pointer, 32 or 8 bits wide
                    width = i8 if kind is chars else i32
                    values.append(_cgutils.alloca_once_value(builder, builder.trunc(value, width)))
            builder.call(function, values)
            return context.get_dummy_value()

        return signature, codegen


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
        raise ValueError("gemm: an operand's rows overlap or are not aligned")
    return max(a.strides[0] // size, 1)


@_jit
def _gemm_nt(a, b, c, beta):
    m, k = a.shape
    n = b.shape[0]
    if m == 0 or n == 0:
        return
    _xgemm(_TRANS, _NOTRANS, n, m, k, 1.0, b, _lead(b), a, _lead(a), beta, c, _lead(c))


@_jit
def _gemm_nn(a, b, c, beta):
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    _xgemm(_NOTRANS, _NOTRANS, n, m, k, 1.0, b, _lead(b), a, _lead(a), beta, c, _lead(c))


@_jit
def _gemm_tn(a, b, c, beta):
    k, m = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    _xgemm(_NOTRANS, _TRANS, n, m, k, 1.0, b, _lead(b), a, _lead(a), beta, c, _lead(c))

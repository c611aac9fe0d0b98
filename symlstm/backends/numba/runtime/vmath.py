"""Runtime of every generated numba module: tanh, exp and sigmoid that vectorise inside a kernel's loop.

numba from the package index has no vector math library: math.tanh and math.exp in a loop stay scalar
libm calls, four per vector. These are plain arithmetic (Cephes's rational and polynomial
approximations, range reduction, 2**n built from its bit pattern), without branches, so a loop of them
vectorises; one version per precision (float32 stays float32). Clamps are written `hi if x > hi else
x`, so a NaN passes through; exp overflows to inf and underflows to 0 as NumPy's does (it gives 0 a
little before the subnormal range). Measured accuracy: within 2.2 ulp of the exact values.
    _vtanh(x), _vexp(x), _vsigmoid(x): a float32 or float64 scalar in, the same type out
    _relu(x), _step(x): max(x, 0) and its derivative at relu's output (1 if x > 0, else 0), NaN kept
"""

import numpy as np

numba = None  # stand-ins for what the module defines before this point (runtime/jit.py)


def _jit_helper(function): ...


# -- generated modules include this file from the next line on --
if numba is not None:
    from llvmlite import ir as _llvm_ir
    from numba.extending import intrinsic as _intrinsic
    from numba.extending import overload as _overload

    @_intrinsic
    def _bits_to_float(typingctx, bits):
        """int32 -> float32, int64 -> float64, the same bits."""
        if bits == numba.int32:
            out, kind = numba.float32, _llvm_ir.FloatType()
        elif bits == numba.int64:
            out, kind = numba.float64, _llvm_ir.DoubleType()
        else:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], kind)

        return out(bits), codegen


# float64: Cephes exp.c and tanh.c.
_LOG2E = 1.4426950408889634
_C1, _C2 = 6.93145751953125e-1, 1.42860682030941723212e-6
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1 = 3.00198505138664455042e-6, 2.52448340349684104192e-3
_EQ2, _EQ3 = 2.27265548208155028766e-1, 2.00000000000000000009e0
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@_jit_helper
def _exp64(x):
    z = 710.0 if x > 710.0 else x  # exp(710) overflows: 2**1024 has the bit pattern of inf
    z = -708.0 if z < -708.0 else z
    px = np.floor(_LOG2E * z + 0.5)
    n = np.int64(px)
    r = z - px * _C1
    r = r - px * _C2
    rr = r * r
    p = r * ((_EP0 * rr + _EP1) * rr + _EP2)
    e = 1.0 + 2.0 * (p / ((((_EQ0 * rr + _EQ1) * rr + _EQ2) * rr + _EQ3) - p))
    e = e * _bits_to_float((n + 1023) << 52)
    return 0.0 if x < -708.0 else e


@_jit_helper
def _tanh64(x):
    z = abs(x)
    z = 19.1 if z > 19.1 else z  # tanh(19.1) rounds to 1
    big = 1.0 - 2.0 / (_exp64(2.0 * z) + 1.0)
    big = -big if x < 0.0 else big
    s = x * x
    small = x + x * s * (((_TP0 * s + _TP1) * s + _TP2) / (((s + _TQ0) * s + _TQ1) * s + _TQ2))
    return small if z < 0.625 else big


@_jit_helper
def _sigmoid64(x):
    return 1.0 / (1.0 + _exp64(-x))


# float32: Cephes expf.c and tanhf.c, computed in float32.
_F32 = np.float32


@_jit_helper
def _exp32(x):
    z = _F32(89.0) if x > _F32(89.0) else x  # expf(89) overflows: 2**128 has the bit pattern of inf
    z = _F32(-87.0) if z < _F32(-87.0) else z
    pz = np.floor(_F32(1.44269504088896341) * z + _F32(0.5))
    n = np.int32(pz)
    r = z - pz * _F32(0.693359375)
    r = r - pz * _F32(-2.12194440e-4)
    rr = r * r
    p = _F32(1.9875691500e-4) * r + _F32(1.3981999507e-3)
    p = (p * r + _F32(8.3334519073e-3)) * r + _F32(4.1665795894e-2)
    p = (p * r + _F32(1.6666665459e-1)) * r + _F32(5.0000001201e-1)
    e = (p * rr + r + _F32(1.0)) * _bits_to_float(np.int32((n + 127) << 23))
    return _F32(0.0) if x < _F32(-87.0) else e


@_jit_helper
def _tanh32(x):
    z = abs(x)
    z = _F32(9.1) if z > _F32(9.1) else z  # tanhf(9.1) rounds to 1
    big = _F32(1.0) - _F32(2.0) / (_exp32(_F32(2.0) * z) + _F32(1.0))
    big = -big if x < _F32(0.0) else big
    s = x * x
    p = (_F32(-5.70498872745e-3) * s + _F32(2.06390887954e-2)) * s - _F32(5.37397155531e-2)
    p = ((p * s + _F32(1.33314422036e-1)) * s - _F32(3.33332819422e-1)) * s
    small = p * x + x
    return small if z < _F32(0.625) else big


@_jit_helper
def _sigmoid32(x):
    return _F32(1.0) / (_F32(1.0) + _exp32(-x))


def _vtanh(x):
    return np.tanh(x)


def _vexp(x):
    return np.exp(x)


def _vsigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _relu(x):
    return max(x, 0.0)


def _step(x):
    return 1.0 if x > 0 else 0.0


def _by_precision(f32, f64):
    """An overload of a scalar function: `f32` for float32 arguments, `f64` for float64."""

    def typer(x):
        if x == numba.float32:
            return lambda x: f32(x)
        if x == numba.float64:
            return lambda x: f64(x)
        return None

    return typer


@_jit_helper
def _relu32(x):
    return _F32(0.0) if x < _F32(0.0) else x  # NaN and +inf pass, -inf gives 0


@_jit_helper
def _relu64(x):
    return 0.0 if x < 0.0 else x


@_jit_helper
def _step32(x):
    return _F32(1.0) if x > _F32(0.0) else (_F32(0.0) if x <= _F32(0.0) else x)  # NaN passes


@_jit_helper
def _step64(x):
    return 1.0 if x > 0.0 else (0.0 if x <= 0.0 else x)


if numba is not None:
    _overload(_vtanh)(_by_precision(_tanh32, _tanh64))
    _overload(_vexp)(_by_precision(_exp32, _exp64))
    _overload(_vsigmoid)(_by_precision(_sigmoid32, _sigmoid64))
    _overload(_relu)(_by_precision(_relu32, _relu64))
    _overload(_step)(_by_precision(_step32, _step64))

"""Explicit 8-wide float vectors for Numba kernels: one AVX-512 (float64) or AVX2 (float32) register.

LLVM's loop vectoriser only vectorises innermost loops, so a kernel that wants several
problems' values held in registers across a loop over matrix entries has to say so itself.
:data:`f64x8` and :data:`f32x8` are Numba types whose LLVM representations are ``<8 x double>``
and ``<8 x float>``; the intrinsics below load, store and combine such values, and LLVM lowers
them to single vector instructions (an ``f64x8`` is one AVX-512 register, or two AVX2 registers).
Arithmetic is plain IEEE-754: no fast-math flags; :func:`vfma` is an exact fused multiply-add.

The element type follows the operands: :func:`vload` of a float32 array gives an ``f32x8``,
:func:`vsplat` of a float32 scalar too, :func:`vzero` takes the type of its array; the arithmetic
intrinsics accept two vectors of one type (:func:`vrecip` one).  :func:`vratio`, :func:`vsqrt` and :func:`vexp` are
float64 only.

Memory operands are contiguous float64 or float32 arrays (any number of dimensions) indexed by a
flat element offset; a vector occupies elements ``offset .. offset + 7``.  Offsets are not checked.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic, models, register_model

#: Lanes of one vector.
WIDTH = 8

_DOUBLE = ir.DoubleType()
_VEC = ir.VectorType(_DOUBLE, WIDTH)
_VEC32 = ir.VectorType(ir.FloatType(), WIDTH)
_I64VEC = ir.VectorType(ir.IntType(64), WIDTH)


class FloatX8(types.Type):
    """Numba type of eight float lanes (float64 or float32) held as one LLVM vector."""

    def __init__(self, dtype: types.Float):
        self.dtype = dtype
        super().__init__(name=f"f{dtype.bitwidth}x8")


f64x8 = FloatX8(types.float64)
f32x8 = FloatX8(types.float32)
#: Vector type of each element type, and its LLVM vector type.
_VECTOR_OF = {types.float64: f64x8, types.float32: f32x8}
_IR_OF = {f64x8: _VEC, f32x8: _VEC32}


@register_model(FloatX8)
class _FloatX8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _IR_OF[fe_type])


def _splat(value: float) -> ir.Constant:
    return ir.Constant(_VEC, [value] * WIDTH)


def _call(builder: ir.IRBuilder, name: str, args: list, ty: ir.Type = _VEC) -> ir.Value:
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ty, [a.type for a in args]), name
    )
    return builder.call(fn, args)


def _vector_pointer(context, builder, array_type, array, offset) -> ir.Value:
    data = context.make_array(array_type)(context, builder, array).data
    vec = _IR_OF[_VECTOR_OF[array_type.dtype]]
    return builder.bitcast(builder.gep(data, [offset]), vec.as_pointer())


def _vector_of_array(t):
    """The vector type matching a float64/float32 array type, else None."""
    return _VECTOR_OF.get(t.dtype) if isinstance(t, types.Array) else None


@intrinsic
def vload(typingctx, array, offset):
    """The vector ``array.flat[offset : offset + 8]``."""
    vec = _vector_of_array(array)
    if vec is None or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load(ptr, align=vec.dtype.bitwidth // 8)

    return vec(array, offset), codegen


@intrinsic
def vstore(typingctx, array, offset, value):
    """``array.flat[offset : offset + 8] = value``."""
    vec = _vector_of_array(array)
    if vec is None or not isinstance(offset, types.Integer) or value != vec:
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], ptr, align=vec.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(array, offset, value), codegen


def _broadcast(context, builder, scalar, from_type, vec) -> ir.Value:
    """Eight copies of ``scalar`` (converted to the lane type of ``vec``)."""
    x = context.cast(builder, scalar, from_type, vec.dtype)
    lanes = builder.insert_element(
        ir.Constant(_IR_OF[vec], ir.Undefined), x, ir.Constant(ir.IntType(32), 0)
    )
    return builder.shuffle_vector(
        lanes, lanes, ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH)
    )


@intrinsic
def vsplat(typingctx, value):
    """Eight copies of the float ``value``: an ``f32x8`` for a float32, else an ``f64x8``."""
    if not isinstance(value, types.Float):
        return None
    vec = f32x8 if value == types.float32 else f64x8

    def codegen(context, builder, sig, args):
        return _broadcast(context, builder, args[0], sig.args[0], vec)

    return vec(value), codegen


@intrinsic
def vzero(typingctx, array):
    """A vector of zeros of the element type of ``array`` (float64 or float32)."""
    vec = _vector_of_array(array)
    if vec is None:
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(_IR_OF[vec], [0.0] * WIDTH)

    return vec(array), codegen


def _is_vector(t) -> bool:
    return isinstance(t, FloatX8)


@intrinsic
def vfma(typingctx, x, y, z):
    """``x * y + z`` lane by lane, rounded once."""
    if not (_is_vector(x) and x == y == z):
        return None
    name = f"llvm.fma.v8f{x.dtype.bitwidth}"

    def codegen(context, builder, sig, args):
        return _call(builder, name, list(args), _IR_OF[x])

    return x(x, y, z), codegen


def _lanewise(instruction: str, doc: str):
    """An intrinsic ``f(x, y)`` of two vectors that applies one IR ``instruction`` per lane."""

    @intrinsic
    def op(typingctx, x, y):
        if not (_is_vector(x) and x == y):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, instruction)(*args)

        return x(x, y), codegen

    op.__doc__ = doc
    return op


vmul = _lanewise("fmul", "``x * y`` lane by lane.")
vadd = _lanewise("fadd", "``x + y`` lane by lane.")
vsub = _lanewise("fsub", "``x - y`` lane by lane.")
vdiv = _lanewise("fdiv", "``x / y`` lane by lane.")


def _shuffle(builder: ir.IRBuilder, x: ir.Value, y: ir.Value, mask: list[int]) -> ir.Value:
    return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), mask))


#: Masks of the three stages of an 8 x 8 transpose (pairs of rows, then quads, then halves).
_PAIR_LO, _PAIR_HI = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
_QUAD_LO, _QUAD_HI = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
_HALF_LO, _HALF_HI = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]


@intrinsic
def vtranspose8(typingctx, src, src_offset, src_stride, dst, dst_offset, dst_stride):
    """Copy the 8 x 8 block of ``src`` (rows of 8 at ``src_offset + r src_stride``) transposed
    into ``dst`` (rows at ``dst_offset + c dst_stride``): eight vector loads, 24 shuffles and
    eight vector stores instead of 64 scalar moves.  Both arrays of one element type."""
    vec = _vector_of_array(src)
    integers = all(
        isinstance(t, types.Integer) for t in (src_offset, src_stride, dst_offset, dst_stride)
    )
    if vec is None or _vector_of_array(dst) != vec or not integers:
        return None

    def codegen(context, builder, sig, args):
        src, dst = args[0], args[3]
        src_offset, src_stride, dst_offset, dst_stride = (
            context.cast(builder, args[i], sig.args[i], types.intp) for i in (1, 2, 4, 5)
        )

        def pointer(array_type, array, offset, stride, r):
            step = builder.mul(stride, ir.Constant(offset.type, r))
            return _vector_pointer(context, builder, array_type, array, builder.add(offset, step))

        align = vec.dtype.bitwidth // 8
        rows = [
            builder.load(pointer(sig.args[0], src, src_offset, src_stride, r), align=align)
            for r in range(WIDTH)
        ]
        pairs = []
        for r in range(0, WIDTH, 2):
            pairs += [_shuffle(builder, rows[r], rows[r + 1], m) for m in (_PAIR_LO, _PAIR_HI)]
        # pairs: lo01, hi01, lo23, hi23, lo45, hi45, lo67, hi67
        quads = []
        for base in (0, 4):
            lo_a, hi_a, lo_b, hi_b = pairs[base : base + 4]
            quads += [
                _shuffle(builder, lo_a, lo_b, _QUAD_LO),
                _shuffle(builder, lo_a, lo_b, _QUAD_HI),
                _shuffle(builder, hi_a, hi_b, _QUAD_LO),
                _shuffle(builder, hi_a, hi_b, _QUAD_HI),
            ]
        # quads[c] (c < 4) holds column c of rows 0-3 and column c + 4 of rows 0-3; quads[4 + c]
        # the same for rows 4-7
        for c in range(4):
            for column, mask in ((c, _HALF_LO), (c + 4, _HALF_HI)):
                value = _shuffle(builder, quads[c], quads[4 + c], mask)
                ptr = pointer(sig.args[3], dst, dst_offset, dst_stride, column)
                builder.store(value, ptr, align=align)
        return context.get_dummy_value()

    return types.none(src, src_offset, src_stride, dst, dst_offset, dst_stride), codegen


@intrinsic
def vrecip(typingctx, x):
    """``1 / x`` lane by lane (a correctly rounded division)."""
    if not _is_vector(x):
        return None

    def codegen(context, builder, sig, args):
        return builder.fdiv(ir.Constant(_IR_OF[x], [1.0] * WIDTH), args[0])

    return x(x), codegen


@intrinsic
def vratio(typingctx, t, s):
    """``t / s`` where ``t > 0``, else 0: a Sinkhorn scaling, zero where the marginal is zero."""
    if not (t == f64x8 and s == f64x8):
        return None

    def codegen(context, builder, sig, args):
        t, s = args
        positive = builder.fcmp_ordered(">", t, _splat(0.0))
        return builder.select(positive, builder.fdiv(t, s), _splat(0.0))

    return f64x8(t, s), codegen


@intrinsic
def vsqrt(typingctx, x):
    """Square root lane by lane."""
    if x != f64x8:
        return None

    def codegen(context, builder, sig, args):
        return _call(builder, "llvm.sqrt.v8f64", list(args))

    return f64x8(x), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # ln 2 in two parts, so that k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -708.0  # exp(-708) ~ 3.3e-308 is still a normal number
_EXP_MAX = 709.0
#: Taylor coefficients 1/13! ... 1/0! of exp(r), highest first.
_EXP_TAYLOR = [1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
               1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0,
               1.0 / 6.0, 0.5, 1.0, 1.0]  # fmt: skip


@intrinsic
def vexp(typingctx, x):
    """``exp(x)`` lane by lane, to about 1 ulp.

    Cody-Waite reduction ``x = k ln2 + r`` with ``|r| <= ln2 / 2``, the degree-13 Taylor
    polynomial of ``exp(r)`` in fused multiply-adds (truncation < 5e-18), and ``2^k`` added to
    the exponent bits.  Results below ``exp(-708)`` (3.3e-308, where subnormals start) are
    flushed to 0, so ``exp(-inf) = 0``; inputs above 709 give ``exp(709)`` and NaN gives 0 (the
    kernels only exponentiate finite values <= 0).
    """
    if x != f64x8:
        return None

    def codegen(context, builder, sig, args):
        t = args[0]
        keep = builder.fcmp_ordered(">=", t, _splat(_EXP_MIN))
        t = builder.select(keep, t, _splat(0.0))
        t = builder.select(builder.fcmp_ordered("<", t, _splat(_EXP_MAX)), t, _splat(_EXP_MAX))
        k = _call(
            builder,
            "llvm.floor.v8f64",
            [builder.fadd(builder.fmul(t, _splat(_LOG2E)), _splat(0.5))],
        )
        minus_k = builder.fneg(k)
        r = _call(builder, "llvm.fma.v8f64", [minus_k, _splat(_LN2_HI), t])
        r = _call(builder, "llvm.fma.v8f64", [minus_k, _splat(_LN2_LO), r])
        p = _splat(_EXP_TAYLOR[0])
        for coefficient in _EXP_TAYLOR[1:]:
            p = _call(builder, "llvm.fma.v8f64", [p, r, _splat(coefficient)])
        exponent = builder.shl(builder.fptosi(k, _I64VEC), ir.Constant(_I64VEC, [52] * WIDTH))
        bits = builder.add(builder.bitcast(p, _I64VEC), exponent)
        return builder.select(keep, builder.bitcast(bits, _VEC), _splat(0.0))

    return f64x8(x), codegen

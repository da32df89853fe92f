"""adaptive_tx._quantize: the 8-bit codes, and encode/decode against a NumPy transcription of the same map."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from adaptive_tx._quantize import SIGNED, UNSIGNED, Codec, Format, QuantizedArray, decode, encode
from tests.test_state_rounding import _adam_oracle, _large_then_small, _summed_updates

SHAPES = [(5,), (1000,), (3, 700), (2, 3, 256)]
FORMATS = [pytest.param(SIGNED, id="signed"), pytest.param(UNSIGNED, id="unsigned")]


def values(fmt: Format) -> tuple[np.ndarray, np.ndarray]:
    """Every code ``fmt`` produces and the value it stands for: the reference, float64 from the format's formula
    (the encoder works on float32 bits instead).

    Magnitude codes above the top (1.0) are never produced. Signed codes: the magnitudes, and from code
    ``2**(E + M)`` on, their negatives.
    """
    codes = np.arange(fmt.top + 1)
    e, m = codes >> fmt.mantissa_bits, codes & (2**fmt.mantissa_bits - 1)
    magnitudes = 2.0 ** (e - fmt.bias) * (1 + m / 2**fmt.mantissa_bits)
    if not fmt.signed:
        return codes, magnitudes
    magnitudes = np.where(e == 0, 2.0 ** (1 - fmt.bias) * m / 2**fmt.mantissa_bits, magnitudes)
    sign = 2 ** (fmt.exponent_bits + fmt.mantissa_bits)  # 0 has one code: no negative 0.
    return np.concatenate([codes, codes[1:] + sign]), np.concatenate([magnitudes, -magnitudes[1:]])


def numpy_encode(x: np.ndarray, fmt: Format, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: per block of the last axis, the scale 2^(floor(log2 absmax) + 1) (the power of two above
    the absmax) and each element's nearest value (float64 distances, a tie away from 0), by brute force over
    the values the codes stand for, written from the format's formula."""
    n = x.shape[-1]
    blocks = -(-n // block_size)
    padded = np.zeros((*x.shape[:-1], blocks * block_size), np.float64)
    padded[..., :n] = x
    padded = padded.reshape(*x.shape[:-1], blocks, block_size)
    absmax = np.abs(padded).max(axis=-1)
    scales = np.where(absmax > 0, 2.0 ** (np.floor(np.log2(np.where(absmax > 0, absmax, 1))) + 1), 2.0**-126)
    y = padded / scales[..., None]
    codes, book = values(fmt)
    distance = np.abs(y[..., None] - book)
    distance -= 1e-300 * np.abs(book)  # Ties to the larger magnitude.
    nearest = codes[distance.argmin(axis=-1)].reshape(*x.shape[:-1], -1)[..., :n]
    return nearest.astype(np.uint8), scales.astype(np.float32)


def _random(shape, seed, spread=6.0, signed=True):
    """Values of random sign (or positive) and magnitude spread over ``spread`` decades."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], shape) if signed else 1.0
    return (sign * 10.0 ** rng.uniform(-spread, 0.5, shape)).astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_codes_values_follow_the_formula(fmt):
    codes, book = values(fmt)
    magnitudes = book[codes < 2 ** (fmt.exponent_bits + fmt.mantissa_bits)]
    assert np.all(np.diff(magnitudes) > 0) and magnitudes[-1] == 1.0  # Ascending, the largest exactly 1.
    # Every binade from 2**-31 (unsigned) or 2**-30 (signed, and subnormals below) to 1 holds 2**M values.
    if fmt.signed:
        assert magnitudes[0] == 0 and magnitudes[1] == 2.0**-32 and len(book) == 2 * len(magnitudes) - 1
    else:
        assert magnitudes[0] == 2.0**-31 and len(book) == 249  # No zero; 7 codes above 1.0 unused.
    relative_gap = np.diff(magnitudes) / magnitudes[1:]
    assert np.max(relative_gap[magnitudes[1:] >= fmt.smallest_normal]) <= 2.0**-fmt.mantissa_bits


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("block_size", [64, 256])
def test_encode_gives_the_references_codes_and_scales(shape, fmt, block_size):
    x = _random(shape, seed=len(shape) + block_size, spread=12, signed=fmt.signed)
    if x.size > 3:
        x.reshape(-1)[:3] = 0.0  # Zeros inside a block.
    q = jax.jit(lambda x: encode(x, Codec(fmt, block_size)))(jnp.asarray(x))
    codes, scales = numpy_encode(x, fmt, block_size)
    assert isinstance(q, QuantizedArray) and q.codes.dtype == jnp.uint8 and q.codes.shape == shape
    np.testing.assert_array_equal(np.asarray(q.codes), codes)
    np.testing.assert_array_equal(np.asarray(q.scales), scales)
    # Decoding is the value of each code times its block's scale, exactly.
    book = dict(zip(*values(fmt), strict=True))
    expected = (
        np.vectorize(book.get)(codes) * np.repeat(scales.astype(np.float64), block_size, axis=-1)[..., : shape[-1]]
    )
    np.testing.assert_array_equal(np.asarray(decode(q, Codec(fmt, block_size)), np.float64), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_decoded_error_is_at_most_half_a_gap(fmt):
    x = _random((4, 1000), seed=1, spread=8, signed=fmt.signed)
    codec = Codec(fmt, 256)
    decoded = np.asarray(decode(encode(jnp.asarray(x), codec), codec), np.float64)
    scale = np.repeat(np.asarray(encode(jnp.asarray(x), codec).scales, np.float64), 256, axis=-1)[:, :1000]
    normal = np.abs(x) >= fmt.smallest_normal * scale
    relative = np.abs(decoded - x) / np.abs(x)
    # Half the relative gap of M mantissa bits: 12.5% for first moments, 6.25% for squared accumulators.
    assert np.max(relative[normal]) <= 2.0 ** -(fmt.mantissa_bits + 1) * (1 + 1e-6)
    assert np.max(relative[normal]) > 2.0 ** -(fmt.mantissa_bits + 2)  # And the bound is not loose.


def test_a_non_zero_second_moment_never_reads_back_as_zero():
    rng = np.random.default_rng(0)
    nu = (10.0 ** rng.uniform(-30, 3, (8, 512))).astype(np.float32)  # 33 decades within each block.
    nu[0] = 0.0  # A block that never saw a gradient stays 0.
    codec = Codec(UNSIGNED, 256)
    q = encode(jnp.asarray(nu), codec)
    decoded = np.asarray(decode(q, codec))
    assert np.all(decoded[1:] > 0)
    assert np.all(decoded[0] == 0)
    # Below the smallest value an element reads back larger, never smaller: 1 / sqrt(nu) stays bounded.
    floor = 2.0**-31 * np.repeat(np.asarray(q.scales), 256, axis=-1)
    tiny = nu < floor
    assert tiny[1:].sum() > 1000  # Most of these 33 decades are below the code's 9.
    np.testing.assert_array_equal(decoded[tiny], floor[tiny].astype(np.float32))


@pytest.mark.parametrize("fmt", FORMATS)
def test_stochastic_encoding_is_unbiased_and_picks_a_neighbouring_code(fmt):
    x = _random((512,), seed=3, spread=8, signed=fmt.signed)  # Above the unsigned code's floor.
    codec = Codec(fmt, 256)
    codes_, book_ = values(fmt)
    book = dict(zip(codes_, book_, strict=True))
    nearest = np.asarray(encode(jnp.asarray(x), codec).codes)
    keys = jax.random.split(jax.random.key(0), 4000)
    q = jax.jit(jax.vmap(lambda k: encode(jnp.asarray(x), codec, k)))(keys)
    decoded = np.asarray(jax.vmap(lambda q: decode(q, codec))(q), np.float64)
    scale = np.repeat(np.asarray(q.scales[0], np.float64), 256)
    near = np.vectorize(book.get)(nearest) * scale
    gap = np.abs(decoded - near).max(axis=0)  # Each draw is the nearest value or its neighbour across x.
    assert np.all(np.abs(decoded - x) <= gap + 1e-300)
    # The mean of 4000 draws: within 5 standard errors of x.
    assert np.all(np.abs(decoded.mean(axis=0) - x) <= 5 * gap / np.sqrt(4000) * 0.5 + 1e-300)
    changed = (np.asarray(q.codes) != nearest).mean()
    assert 0.05 < changed < 0.5  # It does round up and down at random.


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_all_zero_block_and_values_the_code_holds_round_trip_exactly(fmt):
    codec = Codec(fmt, 4)
    # Blocks of 4: all zeros; 1 (scale 2) and values on the code's grid; 3 (scale 4) and 2^-20, and a zero where
    # the code has one (signed: with negative values too; unsigned codes read a zero beside 3 as 4 * 2^-31).
    x = np.array([[0, 0, 0, 0, 1, 0.5, 0.375, 0.75, 3, 0.5, 1.25, 2**-20]], np.float32)
    if fmt.signed:
        x[0, 9] = 0
        x = x * np.where(np.arange(12) % 3 == 1, -1, 1).astype(np.float32)
    decoded = jax.jit(lambda x: decode(encode(x, codec), codec))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(decoded), x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 4}, "bits must be 8"),
        ({"block_size": 1}, "block_size must be an integer >= 2"),
        ({"block_size": 2.5}, "block_size must be an integer >= 2"),
        ({"min_size": -1}, "min_size must be an integer >= 0"),
    ],
)
def test_quantized_refuses_bad_arguments_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        atx.quantized(**kwargs)


# ----------------------------------------------------------------------------- quantized state in the optimizers


def _decoded(q: QuantizedArray, fmt: Format) -> np.ndarray:
    """The float64 values a quantized state leaf holds, by the reference's formula."""
    book = dict(zip(*values(fmt), strict=True))
    scales = np.repeat(np.asarray(q.scales, np.float64), q.block_size, axis=-1)[..., : q.codes.shape[-1]]
    return np.vectorize(book.get)(np.asarray(q.codes)) * scales


def test_adams_8bit_step_is_the_equation_on_the_state_as_stored():
    # One step from a quantized state: the new moments are the equation's, on the decoded old ones, encoded
    # as the NumPy reference encodes them; the update is the equation on the decoded new ones.
    q8 = atx.quantized(block_size=64, min_size=0)
    lr, b1, b2, eps = 0.01, 0.8, 0.9, 1e-3
    tx = atx.adam(lr, b1=b1, b2=b2, eps=eps, mu_dtype=q8, nu_dtype=q8)
    w = jnp.asarray(_random((3, 200), seed=5, spread=3))
    state = tx.init(w)
    for t in range(1, 4):
        g = jnp.asarray(_random((3, 200), seed=10 + t, spread=4))
        old = state[0]
        updates, state = jax.jit(tx.update)(g, state, w)
        g64 = np.asarray(g, np.float64)
        mu = b1 * _decoded(old.mu, SIGNED) + (1 - b1) * g64
        nu = b2 * _decoded(old.nu, UNSIGNED) + (1 - b2) * g64**2
        # The equation in float32 arithmetic ends within float32's rounding of the float64 value; only
        # values at a rounding boundary could land on another code, and these random ones are not.
        for new, expected, fmt in ((state[0].mu, mu, SIGNED), (state[0].nu, nu, UNSIGNED)):
            codes, scales = numpy_encode(expected.astype(np.float32), fmt, 64)
            differ = np.asarray(new.codes) != codes  # Where float32 arithmetic ends across a rounding boundary:
            assert np.mean(differ) < 0.01  # a few, each one code off.
            assert np.all(np.abs(np.asarray(new.codes, int)[differ] - codes[differ].astype(int)) == 1)
            np.testing.assert_array_equal(np.asarray(new.scales), scales)
        v, s = _decoded(state[0].mu, SIGNED), _decoded(state[0].nu, UNSIGNED)
        expected = -lr * v / (1 - b1**t) / (np.sqrt(s / (1 - b2**t)) + eps)
        np.testing.assert_allclose(np.asarray(updates, np.float64), expected, rtol=2e-6, atol=1e-12)


@pytest.mark.parametrize(
    ("make", "fields"),
    [
        (lambda q: atx.adam(1e-3, mu_dtype=q, nu_dtype=q), {"mu": SIGNED, "nu": UNSIGNED}),
        (lambda q: atx.adagrad(1e-2, accumulator_dtype=q), {"sum_of_squares": UNSIGNED}),
        (lambda q: atx.momentum(1e-2, accumulator_dtype=q), {"trace": SIGNED}),
    ],
    ids=["adam", "adagrad", "momentum"],
)
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_large_leaves_are_quantized_small_ones_and_scalars_stay_float32(make, fields, param_dtype):
    params = {
        "big": jnp.ones((16, 512), param_dtype),
        "small": jnp.ones(4095, param_dtype),
        "scalar": jnp.ones((), param_dtype),
    }
    tx = make(atx.quantized())
    state = tx.init(params)[0]
    for name in fields:
        leaves = getattr(state, name)
        assert isinstance(leaves["big"], QuantizedArray) and leaves["big"].block_size == 256
        assert leaves["big"].codes.shape == (16, 512) and leaves["big"].scales.shape == (16, 2)
        assert leaves["small"].dtype == jnp.float32 and leaves["scalar"].dtype == jnp.float32
    updates, _ = jax.jit(tx.update)(jax.tree.map(lambda p: p * 0.5, params), tx.init(params), params)
    assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(param_dtype)}  # Storage widens nothing.
    # Bytes per parameter, from the shapes: 1 per code and 4 per block of 256 of the last axis where quantized,
    # 4 per element elsewhere (and the step count).
    per_field = 16 * 512 * 1 + 16 * 2 * 4 + (4095 + 1) * 4
    total = sum(np.asarray(x).nbytes for x in jax.tree.leaves(tx.init(params)))
    assert total == len(fields) * per_field + (4 if fields.keys() & {"mu"} else 0)


def test_adam_8bit_state_costs_about_two_bytes_per_parameter():
    params = jax.ShapeDtypeStruct((4096, 1024), jnp.float32)
    q8 = atx.quantized()
    state = jax.eval_shape(atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8, state_rounding="stochastic").init, params)
    total = sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))
    assert total / (4096 * 1024) == pytest.approx(2 * (1 + 4 / 256), abs=1e-5)  # 2.03 bytes: the codes and scales.


def test_complex_params_are_refused_with_quantized_state_naming_the_leaf():
    with pytest.raises(TypeError, match=r"params leaf \['z'\] is complex .*quantized state holds real values only"):
        atx.adam(1e-3, nu_dtype=atx.quantized(min_size=0)).init({"z": jnp.ones(8, jnp.complex64)})


def test_a_split_last_axis_must_hold_whole_blocks():
    mesh = jax.sharding.AbstractMesh((4,), ("model",))
    P = jax.sharding.PartitionSpec

    def params(spec):
        return {"w": jax.ShapeDtypeStruct((8, 1000), jnp.float32, sharding=jax.sharding.NamedSharding(mesh, spec))}

    q8 = atx.quantized(min_size=0)
    tx = atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8)
    with pytest.raises(ValueError, match=r"params leaf \['w'\] splits its last axis of 1000 into 4 shards of 250"):
        atx.sharding.state_shardings(tx, params(P(None, "model")), mesh)
    mu = atx.sharding.state_shardings(
        atx.adam(1e-3, mu_dtype=atx.quantized(block_size=250)), params(P(None, "model")), mesh
    )[0].mu["w"]
    assert mu.codes.spec == mu.scales.spec == P(None, "model")  # Shards of 250: one block each.
    mu = atx.sharding.state_shardings(tx, params(P("model")), mesh)[0].mu["w"]
    assert mu.codes.spec == mu.scales.spec == P("model", None)


def test_adam_with_8bit_state_and_stochastic_rounding_tracks_float64():
    grads = _large_then_small()
    oracle = _adam_oracle(grads)
    q8 = atx.quantized(min_size=0)
    for seed in (0, 1):
        tx = atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8, state_rounding="stochastic", rounding_seed=seed)
        total, state = _summed_updates(tx, grads)
        assert isinstance(state[0].inner_state.nu, QuantizedArray)
        # Measured: 0.56% and 0.25% off in the sum (seed 2: 0.85%); each coordinate's own sum within 4.5%.
        assert abs(total.sum() / oracle.sum() - 1) < 0.015
        assert np.median(np.abs(total / oracle - 1)) < 0.06
    # The control: rounding to nearest freezes the second moment after the drop (measured: 309% off).
    nearest, _ = _summed_updates(atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8), grads)
    assert nearest.sum() / oracle.sum() - 1 > 1.0


@pytest.mark.parametrize(
    ("make", "fields"),
    [
        (lambda q: atx.adam(1e-3, mu_dtype=q, nu_dtype=q, state_rounding="stochastic"), 2),
        (lambda q: atx.adagrad(1e-3, accumulator_dtype=q, state_rounding="stochastic"), 1),
        (lambda q: atx.momentum(1e-3, accumulator_dtype=q), 1),
    ],
    ids=["adam", "adagrad", "momentum"],
)
def test_a_quantized_step_needs_one_byte_per_parameter_and_field_of_temporaries(make, fields):
    # A block's scale needs the largest exponent of its new values: XLA's CPU backend writes a reduction's
    # input out before reducing, so each quantized field costs one byte per parameter (the exponents) during
    # the step, where float32 state needs none. No float32 copy of the state is kept: measured 2.07 bytes
    # per parameter for Adam (1.04 for AdaGrad and momentum).
    n = 1 << 20
    params = jax.ShapeDtypeStruct((n,), jnp.float32)
    tx = make(atx.quantized())

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, jax.eval_shape(tx.init, params), params).compile()
    assert compiled.memory_analysis().temp_size_in_bytes / n < fields * 1.1


@pytest.mark.parametrize(
    "make",
    [
        lambda d, r: atx.rmsprop(1e-2, accumulator_dtype=d, momentum=0.5, state_rounding=r),
        lambda d, r: atx.adadelta(1.0, accumulator_dtype=d, eps=1e-4, state_rounding=r),
        lambda d, r: optax.chain(atx.scale_by_nadam(mu_dtype=d, nu_dtype=d, state_rounding=r), optax.scale(-1e-2)),
        lambda d, r: atx.adam(1e-2, amsgrad="raw", nesterov=True, mu_dtype=d, nu_dtype=d, state_rounding=r),
        lambda d, r: atx.momentum(1e-2, accumulator_dtype=d, nesterov=True, state_rounding=r),
    ],
    ids=["rmsprop-momentum", "adadelta", "nadam", "adam-amsgrad-nesterov", "momentum-nesterov"],
)
def test_every_kind_of_state_follows_its_float32_trajectory_in_8_bits(make):
    # The blocks and knobs beyond the registry's 8-bit entries (Adam, AdaGrad): each keeps its
    # params-shaped fields quantized, and 30 steps on a quadratic with stochastic rounding end where float32
    # state's do: the loss within 1% (measured 0.64% at most), the params within 10% of the distance travelled
    # (measured 2% to 8%: each coordinate's steps carry the rounding's noise).
    target = jnp.asarray(_random((8, 512), seed=7, spread=2))
    w0 = jnp.zeros_like(target)

    def loss(w):
        return 0.5 * jnp.sum((w - target) ** 2)

    def run(tx):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(jax.grad(loss)(w), state, w)
            return (optax.apply_updates(w, updates), state), None

        return jax.jit(lambda w: jax.lax.scan(step, (w, tx.init(w)), length=30)[0])(w0)

    w32, _ = run(make(None, "nearest"))
    w8, state = run(make(atx.quantized(), "stochastic"))
    leaves = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, QuantizedArray))
    assert sum(isinstance(x, QuantizedArray) for x in leaves) >= 1
    travelled = np.linalg.norm(np.asarray(w32 - w0))
    assert travelled > 10 and np.linalg.norm(np.asarray(w8 - w32)) < 0.1 * travelled
    assert abs(float(loss(w8)) / float(loss(w32)) - 1) < 0.01


def test_centered_rmsprop_refuses_8bit_state():
    with pytest.raises(ValueError, match=r"centered=True cannot keep 8-bit state \(accumulator_dtype=quantized"):
        atx.rmsprop(1e-2, centered=True, accumulator_dtype=atx.quantized())

"""adaptive_tx._quantize: the code books, and encode/decode against a NumPy transcription of the same map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptive_tx._quantize import Quantized, decode, dynamic_code_book, encode

SHAPES = [(), (5,), (1000,), (3, 700), (2, 3, 256)]


def numpy_encode(x: np.ndarray, book: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: per block of the last axis, the float32 absmax and each element's nearest book value
    (float64 distances; a tie to the lower code), by brute force over the book."""
    x = np.asarray(x, np.float32).reshape(x.shape if x.ndim else (1,))
    n = x.shape[-1]
    blocks = -(-n // block_size)
    padded = np.zeros((*x.shape[:-1], blocks * block_size), np.float32)
    padded[..., :n] = x
    padded = padded.reshape(*x.shape[:-1], blocks, block_size)
    scales = np.abs(padded).max(axis=-1)
    y = padded / np.where(scales > 0, scales, np.float32(1))[..., None]  # float32, as the encoder divides.
    distance = np.abs(y[..., None].astype(np.float64) - book.astype(np.float64))
    codes = distance.argmin(axis=-1).reshape(*x.shape[:-1], -1)[..., :n]
    return codes.astype(np.uint8), scales


def _random(shape, seed, spread=6.0):
    """Values of random sign and magnitude spread over ``spread`` decades."""
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-spread, 0.5, shape)).astype(np.float32)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_code_book_has_its_size_and_spans_its_decades(bits, signed):
    book = dynamic_code_book(bits, signed=signed)
    assert book.dtype == np.float32 and len(book) == 2**bits
    assert np.all(np.diff(book) > 0) and book[-1] == 1.0  # Ascending, every code a distinct value.
    if signed:
        assert book[0] == -1.0 and np.count_nonzero(book == 0) == 1
        assert np.count_nonzero(book > 0) == 2 ** (bits - 1)
    else:
        assert book[0] > 0  # No zero: a non-zero value never reads back as 0.
    assert np.min(np.abs(book[book != 0])) < (1e-7 if bits == 8 else 1e-3)  # Eight or nine decades below 1.


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("block_size", [64, 256])
def test_encode_gives_the_references_codes_and_scales(shape, signed, block_size):
    book = dynamic_code_book(8, signed=signed)
    x = _random(shape, seed=len(shape) + block_size)
    x = x if signed else np.abs(x)
    # Each block's absmax a power of two (|x| <= 10**0.5 elsewhere): x / a is exact however XLA divides, so
    # the codes must agree exactly, midpoints included.
    if x.ndim:
        x.reshape(-1, x.shape[-1])[:, ::block_size] = np.float32(-4.0 if signed else 4.0)
    q = jax.jit(lambda x: encode(x, book, block_size))(jnp.asarray(x))
    codes, scales = numpy_encode(x, book, block_size)
    assert q.codes.dtype == jnp.uint8 and q.codes.shape == shape
    np.testing.assert_array_equal(np.asarray(q.codes).reshape(codes.shape), codes)
    np.testing.assert_array_equal(np.asarray(q.scales), scales)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_decoded_error_is_within_half_a_gap_of_the_book_times_the_blocks_scale(signed):
    book = dynamic_code_book(8, signed=signed)
    x = _random((4, 1000), seed=1)
    x = x if signed else np.abs(x)
    q = encode(jnp.asarray(x), book, 256)
    decoded = np.asarray(decode(q, book, 256), np.float64)
    codes = np.asarray(q.codes).astype(int)
    gaps = np.diff(book.astype(np.float64))
    below = np.concatenate([[np.inf], gaps])[codes]  # To the lower neighbour (none for the first code).
    above = np.concatenate([gaps, [np.inf]])[codes]
    scale = np.repeat(np.asarray(q.scales, np.float64), 256, axis=-1)[:, :1000]
    y = x / scale
    inside = (y >= book[0]) & (y <= book[-1])
    bound = np.where(inside, np.minimum(np.maximum(below, above), 2.0) / 2, np.inf) * scale
    error = np.abs(decoded - x)
    assert np.all(error[inside] <= bound[inside] * (1 + 1e-6) + 1e-12)
    # In the top decade, half a bin of 0.9 / 63 (signed) or 0.9 / 127 (unsigned) of the absmax: 7.2% or 3.6% of
    # an element at a tenth of the absmax.
    top = np.abs(x) > 0.1 * scale
    assert np.max(error[top] / np.abs(x[top])) <= (0.072 if signed else 0.036) * (1 + 1e-5)


def test_a_non_zero_second_moment_never_reads_back_as_zero():
    book = dynamic_code_book(8, signed=False)
    rng = np.random.default_rng(0)
    nu = (10.0 ** rng.uniform(-30, 3, (8, 512))).astype(np.float32)  # 33 decades within each block.
    nu[0] = 0.0  # A block that never saw a gradient stays exactly 0.
    q = encode(jnp.asarray(nu), book, 256)
    decoded = np.asarray(decode(q, book, 256))
    assert np.all(decoded[1:] > 0)
    assert np.all(decoded[0] == 0)
    # Below the book's smallest value an element reads back larger, never smaller: 1 / sqrt(nu) stays bounded.
    scale = np.repeat(np.asarray(q.scales), 256, axis=-1)
    tiny = nu < book[0] * scale
    assert tiny[1:].sum() > 1000  # Most of these 33 decades are below the book's 7.
    assert np.all(decoded[tiny] == (book[0] * scale)[tiny])


def test_stochastic_encoding_is_unbiased_and_picks_a_neighbouring_code():
    book = dynamic_code_book(8, signed=True)
    x = _random((512,), seed=3, spread=4)
    nearest = np.asarray(encode(jnp.asarray(x), book, 256).codes).astype(int)
    keys = jax.random.split(jax.random.key(0), 4000)
    q = jax.jit(jax.vmap(lambda k: encode(jnp.asarray(x), book, 256, k)))(keys)
    codes = np.asarray(q.codes).astype(int)
    assert np.all(np.abs(codes - nearest) <= 1)
    decoded = np.asarray(jax.vmap(lambda q: decode(q, book, 256))(q), np.float64)
    scale = np.repeat(np.asarray(q.scales[0], np.float64), 256)
    gap = np.diff(book.astype(np.float64))[np.clip(codes.min(axis=0), 0, 254)] * scale
    # The mean of 4000 draws: within 5 standard errors of x (each draw is within one gap of it).
    assert np.all(np.abs(decoded.mean(axis=0) - x) <= 5 * gap / np.sqrt(4000) + 1e-12)
    changed = (codes != nearest).mean()
    assert 0.05 < changed < 0.5  # It does round up and down at random.


def test_an_all_zero_block_and_a_scalar_round_trip_exactly():
    book = dynamic_code_book(8, signed=True)
    for x in (jnp.zeros((3, 300)), jnp.asarray(-0.25), jnp.asarray([1.0, -1.0, 0.0])):
        q = encode(x, book, 256)
        assert isinstance(q, Quantized)
        np.testing.assert_array_equal(np.asarray(decode(q, book, 256)), np.asarray(x))


def test_fewer_decades_raise_the_unsigned_books_floor():
    assert dynamic_code_book(8, signed=False)[0] < 1e-8
    seven = dynamic_code_book(8, signed=False, decades=7)
    assert 1e-7 < seven[0] < 1e-6 and len(seven) == 256 and seven[-1] == 1.0
    with pytest.raises(ValueError, match="bits must be in"):
        dynamic_code_book(9, signed=True)

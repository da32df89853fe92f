"""Test-wide JAX settings: strict dtype promotion and rank promotion, as STYLE.md asks."""

import jax

# Any implicit promotion (bf16 * f32, f32 ** int32, ...) inside the library is a bug: the library casts on
# purpose. Rank promotion (broadcasting (3,) against (2, 3) silently) is also an error in the tests.
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

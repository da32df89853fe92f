"""adaptive_tx: the lecture's adaptive optimizers as exact, composable Optax transformations."""

from adaptive_tx import diagnostics as diagnostics
from adaptive_tx import sharding as sharding
from adaptive_tx._adadelta import ScaleByAdadeltaState as ScaleByAdadeltaState
from adaptive_tx._adadelta import adadelta as adadelta
from adaptive_tx._adadelta import scale_by_adadelta as scale_by_adadelta
from adaptive_tx._adagrad import ScaleByAdagradState as ScaleByAdagradState
from adaptive_tx._adagrad import adagrad as adagrad
from adaptive_tx._adagrad import scale_by_adagrad as scale_by_adagrad
from adaptive_tx._adam import ScaleByAdamState as ScaleByAdamState
from adaptive_tx._adam import ScaleByAmsgradState as ScaleByAmsgradState
from adaptive_tx._adam import adam as adam
from adaptive_tx._adam import scale_by_adam as scale_by_adam
from adaptive_tx._bias_correction import BiasCorrectionState as BiasCorrectionState
from adaptive_tx._bias_correction import bias_correction as bias_correction
from adaptive_tx._leafwise import StochasticRoundingState as StochasticRoundingState
from adaptive_tx._momentum import ScaleByMomentumState as ScaleByMomentumState
from adaptive_tx._momentum import ScaleByMomentumWithCountState as ScaleByMomentumWithCountState
from adaptive_tx._momentum import momentum as momentum
from adaptive_tx._momentum import scale_by_momentum as scale_by_momentum
from adaptive_tx._nadam import ScaleByNadamState as ScaleByNadamState
from adaptive_tx._nadam import scale_by_nadam as scale_by_nadam
from adaptive_tx._packed import PackedState as PackedState
from adaptive_tx._packed import packed as packed
from adaptive_tx._quantize import QuantizedArray as QuantizedArray
from adaptive_tx._quantize import QuantizedDtype as QuantizedDtype
from adaptive_tx._quantize import quantized as quantized
from adaptive_tx._rmsprop import ScaleByCenteredRmsState as ScaleByCenteredRmsState
from adaptive_tx._rmsprop import ScaleByCenteredRmsWithCountState as ScaleByCenteredRmsWithCountState
from adaptive_tx._rmsprop import ScaleByRmsState as ScaleByRmsState
from adaptive_tx._rmsprop import ScaleByRmsWithCountState as ScaleByRmsWithCountState
from adaptive_tx._rmsprop import rmsprop as rmsprop
from adaptive_tx._rmsprop import scale_by_rms as scale_by_rms

__version__ = "0.1.0"

__all__ = (
    "BiasCorrectionState",
    "PackedState",
    "QuantizedArray",
    "QuantizedDtype",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByCenteredRmsState",
    "ScaleByCenteredRmsWithCountState",
    "ScaleByMomentumState",
    "ScaleByMomentumWithCountState",
    "ScaleByNadamState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "StochasticRoundingState",
    "adadelta",
    "adagrad",
    "adam",
    "bias_correction",
    "momentum",
    "packed",
    "quantized",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_rms",
)

"""One colour per optimizer, the same in every picture: the race, its animation, ``train``'s curves, the notebooks.

The colours are six of Okabe and Ito's eight, a set chosen to stay distinct under the common forms of colour
blindness; their black and yellow are left out: black draws the minima, the starts and the reference lines, and
yellow is too faint on white. Plain gradient descent is ``"sgd"`` in ``adaptive-tx train`` (minibatches) and
``"gd"`` in the notebooks (full batch): one algorithm, one colour.

  =========  ===========  ==============
  name       colour       Okabe-Ito name
  =========  ===========  ==============
  sgd, gd    ``#56B4E9``  sky blue
  adagrad    ``#E69F00``  orange
  rmsprop    ``#D55E00``  vermillion
  adadelta   ``#CC79A7``  reddish purple
  momentum   ``#009E73``  bluish green
  adam       ``#0072B2``  blue
  =========  ===========  ==============

Plain data, no matplotlib: any plotting library takes the hex strings. Lines that are not optimizers (one
optimizer's settings, a network's layers) take other colours.

Example:
  >>> from adaptive_tx.palette import COLORS, color_of
  >>> for name, hex_color in COLORS.items():
  ...     print(f"{name:<9} {hex_color}")
  sgd       #56B4E9
  gd        #56B4E9
  adagrad   #E69F00
  rmsprop   #D55E00
  adadelta  #CC79A7
  momentum  #009E73
  adam      #0072B2
  >>> print(color_of("RMSprop 0.99"), color_of("GD (optax.sgd)"))
  #D55E00 #56B4E9

References:
  Okabe & Ito, *Color Universal Design (CUD): how to make figures and presentations that are friendly to
  colorblind people* (2008), https://jfly.uni-koeln.de/color/.
"""

from __future__ import annotations

__all__ = ("COLORS", "color_of")

#: Each optimizer's colour, a hex string, by the name the pictures use for it.
COLORS: dict[str, str] = {
    "sgd": "#56B4E9",
    "gd": "#56B4E9",  # The notebooks' name for the same algorithm.
    "adagrad": "#E69F00",
    "rmsprop": "#D55E00",
    "adadelta": "#CC79A7",
    "momentum": "#009E73",
    "adam": "#0072B2",
}


def color_of(label: str) -> str:
    """The colour of the optimizer a plot label names by its first word, in any case.

    Args:
      label: a line's label that starts with an optimizer's name, e.g. ``"AdaGrad"``, ``"rmsprop 0.99"`` or
        ``"SGD (optax.sgd)"``.

    Returns:
      ``COLORS`` of that name, a hex string.

    Raises:
      KeyError: the first word names no optimizer in ``COLORS``.
    """
    name = label.partition(" ")[0].lower()
    if name not in COLORS:
        raise KeyError(f"{label!r} names no optimizer of the palette; its first word is one of {', '.join(COLORS)}")
    return COLORS[name]

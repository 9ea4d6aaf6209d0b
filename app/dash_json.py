"""Dash's JSON, written faster: the first views (`/_dash-layout`) and every callback answer
(`/_dash-update-component`) are serialised by orjson, which walks the tree in C and asks Python
only for each component's `to_plotly_json()`. Dash's own encoder (plotly's) first walks every value
of every figure in Python: ~50 ms of the Operations page's ~85 ms first view, ~14 ms of a 300 KiB
Assets answer. The bytes are Dash's: a value whose encoding could differ (numpy scalars other than
integers and booleans, arrays other than integer/boolean/float64 ones of one dimension or more in
the machine's byte order, pandas values) sends the whole value to Dash's encoder instead."""
from __future__ import annotations

import dash._callback
import numpy as np
import orjson
from dash._utils import to_json as dash_to_json

__all__ = ["dash_json", "install_callback_encoder"]

# What plotly's JSON encoder escapes (plotly.io._json): the same bytes on the wire as Dash's own.
_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("/", "\\u002f"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
_NATIVE_ARRAY_KINDS = frozenset("biu")  # + float64: what both encoders write alike


def _written_alike(array: np.ndarray) -> bool:
    """True for an array Dash's encoder writes as its `tolist()`: integer, boolean or float64 values
    in the machine's byte order, at least one dimension. (Dash writes a 0-d array as a one-element
    list, and refuses a byte-swapped one: those go to its encoder, to get its answer.)"""
    dtype = array.dtype
    return array.ndim > 0 and dtype.isnative and (dtype.kind in _NATIVE_ARRAY_KINDS or dtype == np.float64)


def _default(obj):
    if hasattr(obj, "to_plotly_json"):
        return obj.to_plotly_json()
    if isinstance(obj, np.ndarray) and _written_alike(obj):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    raise TypeError(type(obj).__name__)


def dash_json(value) -> str:
    """`value` as JSON, byte for byte as Dash's `to_json` writes it."""
    try:
        # no OPT_SERIALIZE_NUMPY: every numpy value comes to _default, which passes on only those
        # written alike (np.float64 is a float: native)
        text = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return dash_to_json(value)
    for unsafe, safe in _JSON_ESCAPES:
        if unsafe in text:
            text = text.replace(unsafe, safe)
    return text


def install_callback_encoder() -> None:
    """Serialise callback answers with `dash_json`: Dash's callback wrapper writes every answer with
    the `to_json` of its module (`dash._callback`), which this replaces. Idempotent; process-wide,
    like Dash's own encoder — every app in the process writes the same bytes either way."""
    if getattr(dash._callback, "to_json", None) is not dash_json:
        dash._callback.to_json = dash_json

"""``refvps annotate``: label masks, Ignore regions and expressions, as the Ref-VPS masks were made.

Clicks on the middle frame -> a segmenter's mask -> propagation forwards and backwards -> corrective
clicks and brush/eraser fixes on any frame -> Ignore on ambiguous regions -> four expressions by two
annotators -> saved in the dataset format (paper §4.2, appendix A.2; DESIGN §9).

* :mod:`refvps.annotate.session` - one clip being labelled (state, undo, autosave, save).
* :mod:`refvps.annotate.segmenters` - ``classic`` (no weights), ``sam2`` (Meta's package) and
  ``hf-sam2`` (transformers), behind one small interface.
* :mod:`refvps.annotate.server` - the local web page's server (token, lock, bounded requests).
* :mod:`refvps.annotate.headless` - the same clicks -> propagate -> save path from a clicks file.

Importing this package imports neither PyTorch nor the web framework.
"""

from __future__ import annotations

__all__ = ["session", "segmenters", "server", "headless", "layers", "lock", "frames"]

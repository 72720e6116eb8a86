"""``refvps annotate``: label masks, Ignore regions and expressions, as the Ref-VPS masks were made.

Clicks on the middle frame -> a segmenter's mask -> propagation forwards and backwards -> corrective
clicks and brush/eraser fixes on any frame -> review -> Ignore on ambiguous regions -> four
expressions by two annotators -> saved in the dataset format in one transaction (paper §4.2,
appendix A.2; docs/ANNOTATE.md).

* :mod:`refvps.annotate.session` - one clip being labelled; it composes
  :mod:`~refvps.annotate.clipstate` (the editable state), :mod:`~refvps.annotate.working` (its
  layers), :mod:`~refvps.annotate.store` (its files), :mod:`~refvps.annotate.autosave` (writes under
  the clip's lock), :mod:`~refvps.annotate.history` (undo), :mod:`~refvps.annotate.propagation` (the
  job thread) and :mod:`~refvps.annotate.saving` (the transactional save);
  :mod:`~refvps.annotate.clipcheck` says which clips it may open.
* :mod:`refvps.annotate.segmenters` - ``classic`` (no weights), ``sam2`` (Meta's package) and
  ``hf-sam2`` (transformers), behind one small interface.
* :mod:`refvps.annotate.server`, :mod:`~refvps.annotate.routes`, :mod:`~refvps.annotate.registry`,
  :mod:`~refvps.annotate.verdicts` - the local web page's server (token, locks, bounded requests).
* :mod:`refvps.annotate.headless` - the same clicks -> propagate -> save path from a clicks file.

Importing this package imports neither PyTorch nor the web framework.
"""

from __future__ import annotations

__all__ = [
    "autosave",
    "clipcheck",
    "clipstate",
    "frames",
    "headless",
    "history",
    "layers",
    "lock",
    "propagation",
    "registry",
    "saving",
    "segmenters",
    "server",
    "session",
    "store",
    "verdicts",
    "working",
]

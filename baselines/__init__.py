"""Baselines of Ref-VPS: the registry ``refvps run-baseline`` reads, the reference baselines, and
one adapter per external method (UNINEXT, VD-IT, MUTR) that runs it from its own checkout.

* :mod:`baselines.registry`: every baseline and what it needs.
* :mod:`baselines.reference`: ``empty``, ``full``, ``motion``, ``oracle``.
* :mod:`baselines.uninext`, :mod:`baselines.vdit`, :mod:`baselines.mutr`: the adapters, each
  naming the upstream repository and the commit it was checked against.
* :mod:`baselines.export`, :mod:`baselines.convert`, :mod:`refvps.predictions.record`,
  :mod:`baselines.external`: what the adapters share (export to the Ref-YouTube-VOS layout,
  conversion of the method's masks, ``run.json``, the resumable subprocess run).
* ``baselines/drivers/run_patched.py``: runs an upstream script with in-memory source patches,
  under the method's own interpreter.
"""

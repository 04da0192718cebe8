"""The SecretFlow SPU engine: picost's ops and models run in SPU 0.9.5 to measure what they cost.

Two sides that never import each other:

* ``jax_ops.py``, ``jax_model.py``, ``runner.py`` run inside the SPU virtualenv
  (``bash scripts/setup-spu.sh`` makes ``.venv-spu``); they are scripts run by path and import only
  jax, numpy, spu, the standard library and each other (by ``sys.path``), never picost;
* ``bridge.py`` runs in picost's environment: it builds the JSON request for a spec (its
  ``model_dump()`` and its lowered ops), runs ``runner.py`` under the SPU interpreter and parses
  the answer.

Like the other engines, nothing in the model, cost or analysis stages imports this package.
"""

"""The CrypTen engine: picost's models run in CrypTen 0.4.1 to measure what they cost.

Two sides that never import each other:

* ``ct_ops.py``, ``ct_model.py``, ``runner.py`` run inside the CrypTen virtualenv
  (``bash scripts/setup-crypten.sh`` makes ``.venv-crypten``); they are scripts run by path and
  import only torch, crypten, the standard library and each other (by ``sys.path``), never picost;
* ``bridge.py`` and ``validate.py`` run in picost's environment: the bridge describes a spec's
  torch reference (ops, weights, token ids) for ``runner.py``, runs it under the CrypTen
  interpreter and parses the answer; ``validate.py`` sets picost's ``crypten`` estimate beside it.

Like the other engines, nothing in the model, cost or analysis stages imports this package.
"""

"""Peak memory of one inference or training step, predicted tensor by tensor for the Hugging Face implementation of
each architecture family (``ledger``: one layer's tensors; ``predict``: the whole step; ``inputs``: the settings;
``components``: ids and labels of the parts). Pure Python: torch is imported only to read the device's kernels."""

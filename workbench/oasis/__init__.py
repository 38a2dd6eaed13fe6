"""OASIS order-augmented similarity labels (Gao et al., ``shared/papers/001``; ``docs/methods.md`` section 3).

- :mod:`workbench.oasis.docstrings`: LLM docstrings from the code, its callers and its callees
  (a static call graph of the package) as queries;
- :mod:`workbench.oasis.negatives`: K functions of the same package (same module first) per query;
- :mod:`workbench.oasis.labels`: graded similarity labels from an annotator embedder, positives 1.0;
- :mod:`workbench.oasis.refine`: the threshold (GMM crossing point) and AST (normalised tree edit
  distance) candidates, the LLM judge and ``sim * (1 + delta_s)``;
- :mod:`workbench.oasis.pipeline`: all of it from run parameters, cached under ``data/oasis/``;
- :mod:`workbench.oasis.objective` / :mod:`workbench.oasis.variants`: the training hook and the ablation.

The CoSENT objective is :func:`workbench.training.losses.cosent`.
"""

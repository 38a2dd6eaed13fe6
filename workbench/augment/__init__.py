"""Training-data augmentation (ChatDANCE, papers/002): LLM rewrites of queries and code filtered by a
cross-encoder (``chatdance``, ``filtering``; the model itself: ``workbench.models.cross_encoder``),
and the rule-based baselines QRA (``qra``) and NatGen-style semantics-preserving code transforms
(``natgen``)."""

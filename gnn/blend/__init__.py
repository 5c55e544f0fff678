"""The blend: component scorers fitted on timed positives, combined by a ranker fitted on validation.

Two stages:

1. **Components** turn a user's history into one score per item: EASE^R on the recency-weighted history,
   knowledge-graph similarity (genres, people, tags — the only signal for items nobody interacted with),
   item-to-next-items transitions, LightGCN (:func:`gnn.train.fit_lightgcn`), implicit ALS folded in from the
   live history, popularity in a window before the user's latest interaction, global popularity, release
   freshness (item year vs the user's latest interaction; years come from the snapshot and are stored in the
   model), and what the people the user follows liked (``social``; the follows come from the snapshot). Items
   without positives get LightGCN embeddings predicted from their knowledge features and year
   (:func:`gnn.blend.knowledge.content_embeddings`), so the LightGCN score reaches them too. With
   ``component_search`` (the default), EASE^R's λ and ALS's factors, regularisation and alpha are first chosen
   per dataset on the validation users, each component alone (:func:`gnn.blend.search.search_components`).
2. **Ranker**: per user, every component's scores are standardised over the items (z-scores), and the
   ranking score is a weighted sum of these features, the "cold" features included (whether the item has
   no positives at all, and the knowledge, freshness and predicted-LightGCN scores of such items). One
   feature stays raw (not standardised): ``cold_prior``, the cold indicator times the log share of the
   user's history liked by nobody else — a per-user offset for cold items, which a z-score would erase.
   The weights are fitted on the validation split — components fitted on ``split.fit``, the weights learnt
   on ``split.val`` targets with a listwise softmax loss (a learned ranker, its L2 penalty chosen from
   ``ranker_l2_grid``) and, with ``ranker="auto"``, a coordinate search of linear weights on validation
   NDCG@20; the candidate best on a ``ranker_folds``-fold cross-fit over validation users is kept.
   ``ranker_features`` restricts the weighted features. Then the components are refitted, with the same
   hyper-parameters, on the final edges: ``split.train`` (honest test figures) or every positive of the
   snapshot (production).

Serving (:class:`gnn.blend.model.RankerModel`) needs no training code: ``RankerModel.score`` takes a live
history (item_idx, epoch seconds) and, for a user the model knows, the user_idx, and returns a score per item.
**New arrivals**: a list reserves ``cold_slots`` positions for the best-scoring items without positives
(:mod:`gnn.blend.cold`), the one policy that bench.quality measures (:func:`gnn.blend.evaluate.ranked_lists`)
and the API applies after its MMR re-ranking (``RankerModel.place_cold``).
Runs are seeded and deterministic on CPU.

Modules, one job each:

* :mod:`~gnn.blend.config` — :class:`~gnn.blend.config.RankerConfig`, the features and file names;
* :mod:`~gnn.blend.scorers` — serving-time component math (recency weights, EASE^R/ALS/social scores, z-scores);
* :mod:`~gnn.blend.cold` — top-k lists and the new-arrival positions;
* :mod:`~gnn.blend.model` — the served model (:class:`~gnn.blend.model.Components`,
  :class:`~gnn.blend.model.RankerModel`, its files ``ranker.npz`` and ``ranker.json``);
* :mod:`~gnn.blend.linear`, :mod:`~gnn.blend.knowledge` — fitting the components;
* :mod:`~gnn.blend.fit` — :func:`~gnn.blend.fit.fit_components` and :func:`~gnn.blend.fit.fit_ranker`;
* :mod:`~gnn.blend.search` — the component search; :mod:`~gnn.blend.weights` — the ranker's weights;
* :mod:`~gnn.blend.evaluate` — the blend's lists and score functions for :mod:`gnn.evaluation`.

The package imports none of them: ``import gnn.blend.model`` loads no fitting code.
"""

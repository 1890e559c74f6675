"""Offline evaluation, budget tuning, config comparison and online quality.

* ``split``: the temporal split (train on the past, test on what each user did next);
* ``metrics``: ranking metrics (recall@k, NDCG@k, hit rate, coverage, popularity bias, overlap);
* ``setup`` and ``strategies``: a graph built from the training events and the strategies that
  answer from it (popular, graph walk, the serving path at a budget, ANN, blended, PageRank);
* ``evaluate``, ``tune``, ``compare``: the ``recserver evaluate / tune / compare`` commands;
* ``report``: tables and JSON documents; ``online``: hit counting on the served answers.
"""

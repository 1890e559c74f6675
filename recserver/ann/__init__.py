"""The ANN fallback tier: item embeddings from the graph, a FAISS index, results cached in Redis.

Off the hot path a build (``model.build_model`` + ``precompute.publish``) learns item vectors
from the behavioural graph, indexes them, writes every item's and every active user's top-K as a
packed binary payload under a versioned key namespace, and flips one pointer key. On the hot path
``tier.AnnTier`` reads the user's (or the context items') keys in one round trip with a socket
timeout taken from the remaining budget, behind a circuit breaker; on a miss it searches the
in-process index if time allows and writes the result back off the response path.
"""

"""libra_client: the Python side of Libra Serve, speaking only HTTP (httpx), on Python 3.10+.

    from libra_client import LibraClient
    results = LibraClient(["http://judge-a:8000", "http://judge-b:8000"]).score(items, judge="libra")

- ``libra_client.client``: ``AsyncLibraClient`` / ``LibraClient`` (chunking, retries honouring
  Retry-After, replica balancing and failover); ``ScoredItem`` per item.
- ``libra_client.verl``: verl's ``custom_reward_function`` (``compute_score`` and batch/async forms).
- ``libra_client.trl``: a TRL ``GRPOTrainer`` reward function.
- ``libra_client.env``: clients configured from ``LIBRA_URL``, ``LIBRA_API_KEY``, ``LIBRA_JUDGE``.
- ``libra_client.messages``: what the judge is shown of chat messages (content parts, tool calls).

It imports nothing of the server: install it alone in a trainer's environment
(``pip install ./client``, distribution ``libra-serve-client``).
"""

from libra_client.client import AsyncLibraClient, LibraClient, RequestRejected, ScoredItem

__all__ = ["AsyncLibraClient", "LibraClient", "RequestRejected", "ScoredItem"]
__version__ = "0.1.0"

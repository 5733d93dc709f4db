"""libra_client: the Python side of Libra Serve, speaking only HTTP (httpx), on Python 3.10+.

    from libra_client import LibraClient
    with LibraClient(["http://judge-a:8000", "http://judge-b:8000"]) as client:
        results = client.score(items, judge="libra")

- ``libra_client.client``: ``AsyncLibraClient`` / ``LibraClient`` (chunking, retries honouring
  Retry-After, replica balancing and failover, one attempt loop for plain and streamed requests);
  ``ScoredItem`` per item. A client lives long: keep one and reuse it.
- ``libra_client.verl``: verl's ``custom_reward_function`` (``compute_score`` and batch/async forms).
- ``libra_client.trl``: a TRL ``GRPOTrainer`` reward function.
- ``libra_client.env``: the one client per process the adapters share, configured from ``LIBRA_*``.
- ``libra_client.messages``: what the judge is shown of chat messages (content parts, tool calls).

It imports nothing of the server: install it alone in a trainer's environment
(``pip install ./client``, distribution ``libra-serve-client``).
"""

from libra_client.client import AsyncLibraClient, LibraClient, RequestRejected, ScoredItem

__all__ = ["AsyncLibraClient", "LibraClient", "RequestRejected", "ScoredItem"]
__version__ = "0.1.0"

"""Offline work against a live judge: ``libra-serve bench`` (assess a judge on Libra Bench),
``libra-serve label`` (rewards, DPO pairs and best-of-N for unlabeled data) and ``libra-serve traces``
(rejection-sampled thinking traces as SFT data). All three score over HTTP with the project's client,
resume from their per-item logs and show a progress bar."""

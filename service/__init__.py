"""Libra Serve: a thinking judge behind HTTP. This package is the server, and only the server.

    cli.py         ``libra-serve``: dispatches the subcommands; ``serve`` builds the app and runs uvicorn
    ray_serve.py   ``libra-serve ray`` / ``serve run``: the same app as Ray Serve replicas (``[ray]`` extra)
    launch.py      what a launch decides, under both launchers: serve's parser (vLLM's own engine flags
                   beside ours) and its ``ServeSpec`` (engine args, Settings, judge)
    app.py         ``build_app``: wires the layers; its lifespan owns the engine
    api/           HTTP: middleware (one concern each) -> routes (native, openrlhf, slime: routes only;
                   docs.py: /docs and /redoc from assets the service serves itself)
                   -> serving.py (the rules every scoring endpoint shares) ; protocol.py, errors.py
    judge/         judging, engine-neutral: scorer.py (the stages) over prepare.py, judging.py,
                   types.py, profiles.py, prompts.py (token-safe), verdict.py, cache.py, verifier.py,
                   policy.py (the reward policy; hedging.py, its hedged-answer check), prob.py (label
                   probabilities), assets.py (each profile's renderers, closing ids and label texts, built once)
    engine/        the ``JudgeEngine`` interface (base.py), vLLM's AsyncLLM (vllm_engine.py), the fake
    lifecycle.py   readiness probe, engine-death watchdog, draining; metrics.py: every Prometheus metric
    judges/        judge profiles (TOML data); models/nano-judge/: the bundled tiny judge

Beside it, not imported by it: ``client/`` (``libra_client``: the HTTP client, verl and TRL adapters),
``libra_eval/`` (``libra-serve bench``/``label``/``traces``, over HTTP) and ``nano/`` (the toy world:
data, training, random models; outside the wheel).
"""

"""Judging: one local OpenAI-compatible gateway in front of every judge, with a replayable cache.

Every judge call of every benchmark (alpaca-eval's own client, repro's Arena-Hard and
MT-Bench code) goes over HTTP to a gateway on 127.0.0.1. The gateway answers from a
content-addressed SQLite cache, or asks a backend: the user's OpenAI-compatible endpoint
(bounded concurrency, retries with backoff, timeouts), a replay of recorded judgments, or
a rule-based judge for the tiny setting. Only successful answers are cached.
"""

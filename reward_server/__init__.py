"""Reward server for inference-aware RL: grades k-sample groups of completions over HTTP.

Start it with `reward-server serve`; the wire schemas are in `reward_server.schemas`.
"""

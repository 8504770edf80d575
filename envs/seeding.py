"""Seeds derived from a run's seed, one independent stream per use.

Consecutive integers are not independent streams: with sub-env i seeded ``seed + i``, run s's
env 1 replays run s+1's env 0, so multi-seed runs share episodes and their confidence
intervals come out too narrow. Every seed a run derives comes instead from
``numpy.random.SeedSequence`` (O'Neill's seed-sequence hashing), keyed by what it is for.
"""

from __future__ import annotations

import numpy as np

# What a derived seed is for: the last element of its SeedSequence's spawn key.
ENVS, EVALUATION, RESUME, ACTIONS = 0, 1, 2, 3


def derive_seeds(seed: int, n: int, stream: int, *key: int) -> list[int]:
    """``n`` seeds for ``stream`` (``ENVS``, ``EVALUATION``...) of a run seeded ``seed``;
    ``key`` adds more (e.g. the global step of a resume). Pure: the same arguments give the
    same seeds, and different ones share no stream."""
    sequence = np.random.SeedSequence(int(seed), spawn_key=(stream, *key))
    return [int(s) for s in sequence.generate_state(n, dtype=np.uint32)]

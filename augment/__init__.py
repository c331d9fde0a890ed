"""MUSIC multi-turn contrastive pair synthesis and dataset mixing (docs/methods.md, MUSIC).

Modules: config (MusicConfig), seeds (seed prefixes), steps (the agent steps as pure format/parse
functions; prompts in prompts/), turns (backend calls, re-asks, filters), music (synthesize_pair: the
algorithm), run (the resumable job and its files), mix (D + D_MUSIC), inspection (`augment inspect`).
"""

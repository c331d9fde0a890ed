"""RM-guided data generation: one package per method (docs/methods.md), each registered once in generate.registry."""

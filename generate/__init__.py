"""RM-guided data generation: Review-Instruct, SeDi-Instruct, CoEvol and MIMG (docs/methods.md, one section each)."""

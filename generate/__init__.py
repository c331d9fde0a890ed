"""RM-guided data generation: Review-Instruct, SeDi-Instruct, CoEvol and MIMG (PAPERS.md sections 2-5)."""

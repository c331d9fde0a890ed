"""MUSIC multi-turn contrastive pair synthesis and dataset mixing (PAPERS.md section 1)."""

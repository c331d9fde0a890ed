"""Test doubles shared by test areas (fault-injecting OpenAI-compatible server)."""

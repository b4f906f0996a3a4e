"""Local stand-ins for the clouds (Anthropic, E2B, GitHub) that speak their real protocols."""

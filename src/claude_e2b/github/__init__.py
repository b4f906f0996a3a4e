"""GitHub: workflow commands, triggers and publishing."""

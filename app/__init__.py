"""Gemma Desk's PySide6 desktop app. Only app/worker.py talks to the engine."""

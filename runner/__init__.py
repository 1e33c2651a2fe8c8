"""runner: a declarative batch pipeline runner for AI audio generation and transcription APIs."""

__version__ = "0.1.0"

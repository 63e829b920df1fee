"""The assistant: questions answered from the index, only from what the asker may read, cited
and marked. It builds on search and models."""

__all__: list[str] = []

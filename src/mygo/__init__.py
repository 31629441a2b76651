"""MyGO: multi-modal knowledge graph completion with discrete modality tokens."""
__version__ = "0.1.0"

"""MyGO: multi-modal knowledge graph completion with discrete modality tokens."""
__version__ = "0.2.0"

"""NeuroCAAS interoperability: its job-folder layout (``compat: neurocaas``) and its blueprints."""

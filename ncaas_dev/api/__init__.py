"""The public Python API: ``import ncaas_dev``, then ``ncaas_dev.run(...)`` and friends.

One module per concern: ``project`` (load_blueprint, build), ``stack`` (up, down, status),
``jobs`` (run, submit, jobs, job) with the ``Job`` type in ``job``, ``cloud`` (bake, deploy),
``profile`` and ``shell``. The package ``ncaas_dev`` exports these names lazily (see its
``__getattr__``), so the CLI, which calls the same functions, still starts fast. Nothing here
prints: progress reaches a caller through an optional ``on_progress`` callback (``Progress``).
"""

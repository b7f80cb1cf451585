"""Running the heavy stages on a Dask cluster: worker checks, one task per store (docs/scaling.md).

* :mod:`~wsi_engine.dask_workers`: what the client checks before sending work
  (every worker can read the inputs and write the output at the same absolute
  paths; warns about a small ``MALLOC_TRIM_THRESHOLD_``), and GPU workers (those
  started with the Dask resource ``GPU``);
* :mod:`~wsi_engine.cluster.embed`: ``embed`` as one task per store;
* :mod:`~wsi_engine.cluster.predict`: ``predict`` as one task per store.

Tiling has its own tasks (:mod:`wsi_engine.tiling.tasks`) and uses the checks here.
"""

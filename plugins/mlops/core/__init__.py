"""The core library every room uses: settings, the pipeline config, storage, naming, partitions,
Assets, run dates and the code version. It imports nothing else from mlops."""

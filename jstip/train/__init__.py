"""Training: the LightningModule, the data module and the Hydra entry point (``python -m jstip.train``)."""

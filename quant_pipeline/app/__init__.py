"""The application layer: the ``quant-pipeline`` command line and the workflows it shares with the
Dagster assets (orders and packets read from the warehouse). May import everything below it."""

"""Example Prefect flows: an order-processing pipeline, sync and async."""

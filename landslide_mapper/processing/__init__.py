"""QGIS Processing glue: the provider and one module per algorithm, thin over ``core``."""

"""kdeploy: distil, export and run small text classifiers on the edge."""
__version__ = "0.1.0"

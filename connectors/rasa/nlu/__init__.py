"""NLU components of the business's pipeline (config.yml), loaded by Rasa (Python 3.10):
the out-of-domain detector and the per-workflow fallback."""

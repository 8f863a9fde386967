"""The data-quality report: does the built data carry long-range dependencies the model can use?"""

DEFAULT_MAX_LM_TOKENS = 250_000  # what the report's curves may cost: ~10 minutes of SmolLM2 on 2 CPU cores

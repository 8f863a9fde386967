"""The data-quality report: does the built data carry long-range dependencies the model can use?"""

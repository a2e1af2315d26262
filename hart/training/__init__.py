"""What every trainer of the package shares: training-state files without pickle, the learning-rate
schedule and EMA, process-group reductions and layout checks, and weight digests for staged runs.

The trainers (``tokenizer.train``, ``hart.train``) call these; a fix here lands once for all.
"""

"""Time to accuracy on real data: how long each framework takes to learn the digits data set.

worker.py trains one (workload, framework, seed) in its own process and records every epoch's
training seconds and test accuracy; run.py launches those workers, framework-free, and summarises
them per framework as medians over seeds.
"""
